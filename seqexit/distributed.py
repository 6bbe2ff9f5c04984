"""Tag a Ray Dataset of sentences across processes and machines, with exactly one process's output.

`tag_dataset(dataset, "en-ner", policy=...)` adds `labels`, `exit_layers`, `confidences` and
`entities` to every row of a Ray Dataset whose rows hold `words` (a list of strings) or raw
`text` (one sentence per row, split into `words` on the worker by seqexit's text tokenizer). Each worker is a Ray actor that loads the model once and tags the batches it is sent
(`map_batches` with an actor pool); each sets torch's thread count to its CPU share, so that
workers never oversubscribe a machine's cores. Tagging a sentence does not depend on the others
in its batch (tested), so the labels and exit layers equal the local engine's.

Ray is an optional extra (`pip install "seqexit[ray]"`); nothing else in seqexit imports it.
"""

from __future__ import annotations

import warnings
from typing import Any

from .data import Span
from .bundle import ModelBundle
from .exits import ExitPolicy
from .output import entity_records
from .quantize import check_quantize
from .runtime import check_runtime
from .tagger import TaggedSentence, open_tagger

INSTALL_HINT = 'the Ray engine needs Ray Data: pip install "seqexit[ray]"'
RESULT_COLUMNS = ("labels", "exit_layers", "confidences", "entities", "node")


def require_ray():
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


class SentenceTagger:
    """A Ray Data actor: one model per worker process, loaded once, tagging batch after batch."""

    def __init__(self, model: str, policy: dict[str, Any], threads: int, batch_size: int, quantize: str | None = None,
                 runtime: str = "auto") -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.tagger = open_tagger(model, policy=ExitPolicy.from_dict(policy), batch_size=batch_size, quantize=quantize,
                                  runtime=runtime)
        try:
            import ray

            self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray (a direct call) there is no node
            self.node = ""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        if "words" in batch:
            words = [[str(w) for w in row] for row in batch["words"]]
        elif "text" in batch:
            words = [text_words(str(text)) for text in batch["text"]]
            out["words"] = words
        else:
            raise KeyError(f"rows need a 'words' or a 'text' column; these have {sorted(batch)}")
        tagged = self.tagger.tag(words)
        out["labels"] = [t.labels for t in tagged]
        out["exit_layers"] = [t.exit_layers for t in tagged]
        out["confidences"] = [t.confidence for t in tagged]
        out["node"] = [self.node] * len(tagged)  # which machine tagged it (provenance)
        # the spans Tagger.tag decoded, as seqexit.output's entity objects; the driver of
        # tag_on_ray rebuilds its Spans from these instead of decoding the labels again
        out["entities"] = [entity_records(t) for t in tagged]
        return out


def text_words(text: str) -> list[str]:
    """The words of one sentence of raw text, as the local engine splits text (spaCy's English
    tokenizer, whitespace dropped); the row stays one sentence."""
    from .data.text import default_nlp

    return [token.text for token in default_nlp().tokenizer(text) if not token.is_space]


def tag_dataset(
    dataset,
    model: str,
    *,
    policy: ExitPolicy | None = None,
    preset: str | None = None,
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    batch_size: int = 32,
    rows_per_call: int | None = 512,
    max_retries: int = 3,
    tagger_class: type[SentenceTagger] = SentenceTagger,
    quantize: str | None = None,
    runtime: str = "auto",
):
    """`dataset` (rows with `words` or `text`) plus each row's labels, exit layers, confidences and
    entities (token offsets, end exclusive, and their text), tagged by `workers` actors that each load `model`
    (a folder or a shipped name, resolvable on every node) once, under `policy` or the model's
    calibrated `preset` (default: full depth).

    cpus_per_worker: Ray CPUs per actor, and its torch thread count (rounded, at least 1).
    rows_per_call: sentences per actor call (the engine batches them by `batch_size` inside,
    length-sorted); None: one call per dataset block. A failed call is retried up to `max_retries` times, on a restarted actor if
    its process died. tagger_class: the actor (a subclass may add work around each batch).
    quantize="int8": every actor runs the int8 engine, and `preset` names an int8 preset.
    runtime: what runs each actor's layers ('auto': measured on that node)."""
    ray = require_ray()
    quantize = check_quantize(quantize)
    runtime = check_runtime(runtime)
    if preset is not None:
        if policy is not None:
            raise ValueError("give an exit policy or a preset, not both")
        policy = ModelBundle.find(model).policy(preset, quantize=quantize)
    policy = policy or ExitPolicy()
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args_fn (gone in 2.64; the extra pins ray<2.61): it is the
        # form whose restart-and-retry of a killed actor the tests exercise; no warning per run
        warnings.filterwarnings("ignore", message=".*ray_remote_args_fn.*")
        return dataset.map_batches(
            tagger_class,
            fn_constructor_kwargs={"model": str(model), "policy": policy.to_dict(),
                                   "threads": int(round(cpus_per_worker)), "batch_size": batch_size,
                                   "quantize": quantize, "runtime": runtime},
            batch_size=rows_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
            ray_remote_args_fn=lambda: {"max_restarts": max_retries, "max_task_retries": max_retries},
        )


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (`auto`, `ray://host:port`), or start a local Ray with
    `num_cpus` (default: this machine's cores); a no-op when Ray is already up."""
    ray = require_ray()
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def tag_on_ray(
    sentences,
    model: str,
    *,
    policy: ExitPolicy | None = None,
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    batch_size: int = 32,
    rows_per_call: int | None = None,
    **dataset_options,
):
    """Tag `Sentence`s on the running Ray (see `start_ray`) and yield `TaggedSentence`s in input
    order, each exactly once: rows carry their position and the source's file and sentence number
    (`id`, `file:#n`), and the driver checks every row against the input as it comes back.
    rows_per_call: sentences per actor call; by default the local engine's chunk (32 batches), one
    block each, so every call tags exactly the batches `Tagger.tag_stream` would and the output
    equals the local engine's to the last bit. dataset_options go to `tag_dataset`."""
    ray = require_ray()
    sentences = list(sentences)
    scheme = ModelBundle.find(model).config.scheme
    per_file: dict[str, int] = {}
    rows = []
    for seq, sentence in enumerate(sentences):
        source = sentence.source or "<input>"
        per_file[source] = per_file.get(source, 0) + 1
        rows.append({"seq": seq, "id": f"{source}:#{per_file[source]}", "words": list(sentence.words)})
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    import pandas as pd

    chunk = rows_per_call or 32 * batch_size
    dataset = ray.data.from_pandas([pd.DataFrame(rows[i:i + chunk]) for i in range(0, len(rows), chunk)] or [pd.DataFrame(rows)])
    tagged = tag_dataset(dataset, model, policy=policy, workers=workers, cpus_per_worker=cpus_per_worker,
                         batch_size=batch_size, rows_per_call=None, **dataset_options)
    expected = 0
    for row in tagged.iter_rows():
        if int(row["seq"]) != expected or row["id"] != rows[expected]["id"]:
            raise RuntimeError(f"Ray returned sentence {row['id']} where {rows[expected]['id']} was due")
        sentence = sentences[expected]
        labels = [str(label) for label in row["labels"]]
        if len(labels) != len(sentence.words):
            raise RuntimeError(f"{row['id']}: {len(labels)} labels for {len(sentence.words)} words")
        entities = row["entities"] if row["entities"] is not None else []
        spans = [Span(str(e["label"]), int(e["start"]), int(e["end"])) for e in entities] if scheme else None
        yield TaggedSentence(list(sentence.words), labels, [float(c) for c in row["confidences"]],
                             [int(layer) for layer in row["exit_layers"]], spans, sentence)
        expected += 1
    if expected != len(rows):
        raise RuntimeError(f"Ray returned {expected} of {len(rows)} sentences")
