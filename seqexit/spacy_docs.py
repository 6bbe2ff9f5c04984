"""spaCy tokens in, seqexit labels out: the library side of the spaCy components (`spacy_plugin/`).

`label_tokens` runs the engine on the tokens of many docs at once (length-sorted batches,
windows for long docs, nothing truncated) and maps the results back to every token, with each
doc's own FLOPs. Whitespace tokens ("\\n", "  ") never reach the encoder: they get the outside
label ("O", or no tag), confidence 1.0 and exit layer 0. `entity_spans`, `merge_spans` and
`set_tags` turn the labels into spaCy annotations with spaCy's own IOB/BILUO helpers.

`fork_safe_torch` keeps `nlp.pipe(n_process=...)` from hanging under the fork start method: a
process forked after torch has run an OpenMP parallel region (any tagging, or loading a model)
inherits the parent's OpenMP thread pool without its threads, and the child's first parallel
region waits on them forever (a futex). The components call it when they are built; it makes
every forked child run torch on one intra-op thread (the worker processes are the parallelism).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spacy.parts_of_speech import IDS
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.util import filter_spans

from .data import INTERNAL_SCHEME, convert
from .exits import ExitPolicy, run_policy
from .model import MultiExitTagger

UPOS_TAGS = frozenset(IDS) - {"", "EOL"}  # what `token.pos_` accepts: Universal POS tags (and spaCy's SPACE)


_fork_hook_installed = False


def _one_thread_after_fork() -> None:
    """In a forked child: one intra-op thread, so torch never enters the parent's OpenMP pool,
    whose threads did not survive the fork (GNU OpenMP is not fork-safe once used)."""
    import torch

    torch.set_num_threads(1)


def fork_safe_torch() -> None:
    """Make every process forked from now on run torch on one intra-op thread (idempotent; a
    no-op where `os.register_at_fork` does not exist). Spawned and forkserver workers start
    fresh and keep torch's default thread count."""
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_one_thread_after_fork)
    _fork_hook_installed = True


def is_blank(text: str) -> bool:
    """True for tokens the encoder never sees: empty or whitespace only."""
    return not text.strip()


@dataclass
class TokenExits:
    """One doc's result, one entry per token (whitespace tokens included).

    labels: the model's label; `outside` ("O" or "") on whitespace tokens.
    confidence: max probability at the exit (1.0 on whitespace tokens).
    exit_layers: 1-based exit layer; 0 on whitespace tokens (no layer ran for them).
    flops: (spent, full): what this doc cost under the policy and at full depth, counted as
        `seqexit.exits.flops` does (so the sum over docs is the run's total).
    """

    labels: list[str]
    confidence: list[float]
    exit_layers: list[int]
    flops: tuple[int, int] = (0, 0)


def label_tokens(
    model: MultiExitTagger,
    token_lists: Sequence[Sequence[str]],
    policy: ExitPolicy,
    *,
    batch_size: int = 32,
    outside: str = "O",
) -> list[TokenExits]:
    """Label every token of every token list (a doc's `token.text`s) under `policy`, in order:
    `run_policy` on each doc's non-blank tokens, so a doc's labels, confidences and exit layers
    equal `Tagger.tag` on those words; blank tokens get `outside`, confidence 1, exit layer 0."""
    kept = [[i for i, text in enumerate(tokens) if not is_blank(text)] for tokens in token_lists]
    words = [[tokens[i] for i in keep] for tokens, keep in zip(token_lists, kept)]
    run = run_policy(model, words, policy, batch_size=batch_size)
    results = []
    for tokens, keep, done in zip(token_lists, kept, run.sentences):
        out = TokenExits([outside] * len(tokens), [1.0] * len(tokens), [0] * len(tokens), (done.flops_spent, done.flops_full))
        for i, label, conf, layer in zip(keep, done.labels(model), done.confidence.tolist(), done.exit_layer.tolist()):
            out.labels[i], out.confidence[i], out.exit_layers[i] = label, conf, layer
        results.append(out)
    return results


def entity_spans(doc: Doc, labels: Sequence[str], scheme: str | None = INTERNAL_SCHEME) -> list[Span]:
    """Spans of `doc` from per-token span labels (whitespace tokens' labels are ignored).

    The non-blank tokens' labels are read leniently as `decode_spans` reads them (an I- after O
    starts a span, as in conlleval and `Tagger.tag`'s spans), converted to BILUO with spaCy's
    `iob_to_biluo` and placed with `biluo_tags_to_spans`. A whitespace token inside a span stays
    inside it; a span never starts or ends on one.
    """
    if len(labels) != len(doc):
        raise ValueError(f"{len(labels)} labels for a doc of {len(doc)} tokens")
    positions = [token.i for token in doc if not is_blank(token.text)]
    words = convert([labels[i] for i in positions], scheme or INTERNAL_SCHEME, INTERNAL_SCHEME)
    tags = ["O"] * len(doc)
    previous = "O"
    for k, (i, tag) in enumerate(zip(positions, iob_to_biluo(words))):
        if previous[0] in "BI":  # inside a span: the whitespace tokens before this word belong to it
            for j in range(positions[k - 1] + 1, i):
                tags[j] = "I" + previous[1:]
        tags[i], previous = tag, tag
    return list(biluo_tags_to_spans(doc, tags))


def merge_spans(existing: Iterable[Span], new: Iterable[Span], *, overwrite: bool = False) -> list[Span]:
    """`new` alone (overwrite), else `existing` and `new` without overlaps by `filter_spans`:
    the longest span wins, ties go to the earlier start, then to the existing span."""
    if overwrite:
        return list(new)
    return filter_spans([*existing, *new])


def set_tags(doc: Doc, labels: Sequence[str]) -> None:
    """`token.tag_` = label on every non-blank token, and `token.pos_` too when the label is a
    Universal POS tag (a non-UPOS tag such as "NN" never goes into `pos_`)."""
    for token, label in zip(doc, labels):
        if is_blank(token.text) or not label:
            continue
        token.tag_ = label
        if label in UPOS_TAGS:
            token.pos_ = label
