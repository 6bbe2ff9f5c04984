"""spaCy tokens in, seqexit labels out: the library side of the spaCy components (`spacy_plugin/`).

`label_tokens` runs the engine on the tokens of many docs at once (length-sorted batches,
windows for long docs, nothing truncated) and maps the results back to every token, with each
doc's own FLOPs. Whitespace tokens ("\\n", "  ") never reach the encoder: they get the outside
label ("O", or no tag), confidence 1.0 and exit layer 0. `entity_spans`, `merge_spans` and
`set_tags` turn the labels into spaCy annotations with spaCy's own IOB/BILUO helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from spacy.parts_of_speech import IDS
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.util import filter_spans

from .data import INTERNAL_SCHEME, convert
from .exits import ExitPolicy
from .exits.halting import exit_batch
from .model import MultiExitTagger

UPOS_TAGS = frozenset(IDS) - {"", "EOL"}  # what `token.pos_` accepts: Universal POS tags (and spaCy's SPACE)


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


@torch.inference_mode()
def label_tokens(
    model: MultiExitTagger,
    token_lists: Sequence[Sequence[str]],
    policy: ExitPolicy,
    *,
    batch_size: int = 32,
    outside: str = "O",
) -> list[TokenExits]:
    """Label every token of every token list (a doc's `token.text`s) under `policy`, in order.

    The non-blank tokens of all docs are encoded together and batched exactly as `run_policy`
    batches word lists (chunks length-sorted, `batch_size` per forward), so a doc's labels,
    confidences and exit layers equal `Tagger.tag` on its non-blank words.
    """
    if model.pieces is None:
        raise ValueError("the model has no tokenizer attached")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    kept = [[i for i, text in enumerate(tokens) if not is_blank(text)] for tokens in token_lists]
    words = [[tokens[i] for i in keep] for tokens, keep in zip(token_lists, kept)]
    label_ids = [torch.zeros(len(w), dtype=torch.long) for w in words]
    confidence = [torch.zeros(len(w)) for w in words]
    exit_layer = [torch.zeros(len(w), dtype=torch.long) for w in words]
    flops = [[0, 0] for _ in words]
    todo = [d for d, w in enumerate(words) if w]
    chunks = [
        (doc, chunk)
        for doc, doc_chunks in zip(todo, model.pieces.encode([words[d] for d in todo]))
        for chunk in doc_chunks
        if chunk.n_words
    ]
    chunks.sort(key=lambda item: len(item[1].input_ids))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(chunks), batch_size):
            group = chunks[start : start + batch_size]
            batch = model.pieces.collate([chunk for _, chunk in group]).to(device)
            exits = exit_batch(model, batch, policy)
            costs = list(zip(*(t.tolist() for t in exits.row_flops)))
            ids, conf, layers = exits.label_ids.cpu(), exits.confidence.float().cpu(), exits.exit_layer.cpu()
            for row, (doc, chunk) in enumerate(group):
                first, last = chunk.owned_words
                into, take = slice(first, last), slice(first - chunk.word_offset, last - chunk.word_offset)
                label_ids[doc][into] = ids[row, take]
                confidence[doc][into] = conf[row, take]
                exit_layer[doc][into] = layers[row, take]
                flops[doc][0] += costs[row][0]
                flops[doc][1] += costs[row][1]
    finally:
        model.train(was_training)
    results = []
    for d, tokens in enumerate(token_lists):
        out = TokenExits([outside] * len(tokens), [1.0] * len(tokens), [0] * len(tokens), (flops[d][0], flops[d][1]))
        labels = [model.labels[i] for i in label_ids[d].tolist()]
        for i, label, conf, layer in zip(kept[d], labels, confidence[d].tolist(), exit_layer[d].tolist()):
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
