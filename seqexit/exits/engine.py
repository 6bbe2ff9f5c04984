"""Sentences in, labels per word out: chunking, length-sorted batching, merging back.

`run_policy` is inference under an `ExitPolicy` (full, static, SENTEE, TOKEE) with a FLOP
count; TOKEE and SENTEE take several batches at once and run them layer by layer in groups of
`batch_size` rows that are refilled as sentences finish (see `exit_batch`); `run_exits` reads every exit at once for per-exit evaluation. Sentences longer than the
encoder are split into overlapping windows; each word takes its label from the window that owns
it (`EncodedChunk.owned_words`), so every word gets exactly one label, in order.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..model import MultiExitTagger
from ..pieces import Batch, EncodedChunk
from .flops import FlopCounter
from .halting import exit_batch, new_counter
from .policy import ExitPolicy

LAYER_MAJOR_GROUPS = 16  # TOKEE/SENTEE: batches taken in at once and regrouped layer by layer
CHUNK_PIECES = 64  # padded pieces per row allowed in such a chunk (bounds its memory)


@dataclass
class WordExits:
    """One sentence's result under a policy."""

    label_ids: torch.Tensor  # (words,) long
    confidence: torch.Tensor  # (words,) float
    exit_layer: torch.Tensor  # (words,) long, 1-based
    flops_spent: int = 0  # this sentence's share of the run's FLOPs (see `FlopCounter.rows_spent`)
    flops_full: int = 0  # what full depth would have spent on it

    def labels(self, model: MultiExitTagger) -> list[str]:
        return [model.labels[i] for i in self.label_ids.tolist()]


@dataclass
class PolicyRun:
    """Results in input order plus the FLOPs spent and what full depth would have cost."""

    sentences: list[WordExits]
    flops: FlopCounter
    words_per_layer: list[int] = field(default_factory=list)  # how many words exited at each layer
    first_stage_words: int = 0  # a cascade's words labelled by its first stage (exit layer 0)

    @property
    def words(self) -> int:
        return sum(self.words_per_layer) + self.first_stage_words


@dataclass
class ExitOutputs:
    """Per sentence: label ids and confidences (max probability), one row per exit returned."""

    label_ids: torch.Tensor  # (n_exits, words) long
    confidence: torch.Tensor  # (n_exits, words) float
    logits: torch.Tensor | None = None  # (n_exits, words, labels) float, when asked for

    def labels(self, model: MultiExitTagger, row: int = -1) -> list[str]:
        return [model.labels[i] for i in self.label_ids[row].tolist()]


def length_sorted_batches(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], batch_size: int, *, groups: int = 1
) -> Iterator[tuple[list[tuple[int, EncodedChunk]], Batch]]:
    """Length-sorted batches of (sentence index, chunk) with their collated tensors.

    groups > 1 collates up to that many batches' worth of rows at once (for the layer-by-layer
    TOKEE/SENTEE loop, which regroups them into batches of `batch_size`), as long as the padded
    tensor stays within `groups * batch_size * CHUNK_PIECES` pieces."""
    if model.pieces is None:
        raise ValueError("the model has no tokenizer attached")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    chunks = [
        (sentence, chunk)
        for sentence, sentence_chunks in enumerate(model.pieces.encode(sentences))
        for chunk in sentence_chunks
        if chunk.n_words
    ]
    chunks.sort(key=lambda item: len(item[1].input_ids))
    rows, budget = batch_size * groups, batch_size * groups * CHUNK_PIECES
    start = 0
    while start < len(chunks):
        end = min(start + rows, len(chunks))
        while end - start > batch_size and (end - start) * len(chunks[end - 1][1].input_ids) > budget:
            end = max(start + batch_size, end - batch_size)
        group = chunks[start:end]
        yield group, model.pieces.collate([chunk for _, chunk in group]).to(device)
        start = end


def owned_slices(chunk: EncodedChunk) -> tuple[slice, slice]:
    """(slice into the sentence, slice into the chunk's words) of the words this chunk labels."""
    start, end = chunk.owned_words
    return slice(start, end), slice(start - chunk.word_offset, end - chunk.word_offset)


@torch.inference_mode()
def run_policy(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], policy: ExitPolicy, *, batch_size: int = 32
) -> PolicyRun:
    """Label every word of `sentences` (word lists) with early exit under `policy`."""
    if policy.mode == "cascade":
        from ..cascade import run_cascade

        return run_cascade(model, sentences, policy, batch_size=batch_size)
    was_training = model.training
    if was_training:  # `eval()` walks every module: 1.5 ms, half a sentence's time at batch 1
        model.eval()
    results: list[WordExits | None] = [None] * len(sentences)
    counter = new_counter(model)
    collecting = gc.isenabled()
    gc.disable()  # tokenizing builds many small objects; a full collection mid-run costs ~0.2 s
    try:
        with model.adapter.running():  # e.g. the ONNX runtime: torch on one thread meanwhile
            layer_major = policy.mode in ("tokee", "sentee") and batch_size > 1
            for group, batch in length_sorted_batches(model, sentences, batch_size, groups=LAYER_MAJOR_GROUPS if layer_major else 1):
                exits = exit_batch(model, batch, policy, group_size=batch_size)
                counter.merge(exits.flops)
                _store(results, group, exits, sentences)
    finally:
        if was_training:
            model.train()
        if collecting:
            gc.enable()
    filled = [r if r is not None else _zeros(0) for r in results]  # only sentences without words are left
    layers = torch.cat([r.exit_layer for r in filled]) if filled else torch.zeros(0, dtype=torch.long)
    per_layer = torch.bincount(layers, minlength=model.num_layers + 1)
    return PolicyRun(filled, counter, per_layer[1:].tolist())


def _store(results: list[WordExits | None], group: list[tuple[int, EncodedChunk]], exits, sentences) -> None:
    """Put a batch's rows into `results` (one entry per sentence; a long sentence's windows
    each fill the words they own)."""
    label_ids, confidence, exit_layer = exits.label_ids.cpu(), exits.confidence.float().cpu(), exits.exit_layer.cpu()
    spent, full = (t.tolist() for t in exits.row_flops)
    for row, (sentence, chunk) in enumerate(group):
        if chunk.owned is None:  # the sentence's only chunk: views into the batch's results
            n = chunk.n_words
            results[sentence] = WordExits(label_ids[row, :n], confidence[row, :n], exit_layer[row, :n], spent[row], full[row])
            continue
        if results[sentence] is None:
            results[sentence] = _zeros(len(sentences[sentence]))
        result, (into, take) = results[sentence], owned_slices(chunk)
        result.label_ids[into] = label_ids[row, take]
        result.confidence[into] = confidence[row, take]
        result.exit_layer[into] = exit_layer[row, take]
        result.flops_spent += spent[row]
        result.flops_full += full[row]


def _zeros(n: int) -> WordExits:
    return WordExits(torch.zeros(n, dtype=torch.long), torch.zeros(n), torch.zeros(n, dtype=torch.long))


@torch.inference_mode()
def run_exits(
    model: MultiExitTagger,
    sentences: Sequence[Sequence[str]],
    *,
    batch_size: int = 32,
    num_layers: int | None = None,
    all_exits: bool = False,
    keep_logits: bool = False,
) -> list[ExitOutputs]:
    """Run `model` on word lists. all_exits=False returns one row (the deepest layer run);
    True returns one row per layer 1..num_layers (for per-exit evaluation). keep_logits: also
    return the exits' logits (for calibration)."""
    was_training = model.training
    if was_training:
        model.eval()
    depth = num_layers or model.num_layers
    n_rows = depth if all_exits else 1
    outputs = [
        ExitOutputs(torch.zeros(n_rows, len(words), dtype=torch.long), torch.zeros(n_rows, len(words)),
                    torch.zeros(n_rows, len(words), len(model.labels)) if keep_logits else None)
        for words in sentences
    ]
    try:
        with model.adapter.running():
            for group, batch in length_sorted_batches(model, sentences, batch_size):
                logits = model(batch, num_layers=depth, exits="all" if all_exits else "last")  # (rows, batch, words, labels)
                confidence, label_ids = logits.float().softmax(-1).max(-1)  # (rows, batch, words)
                for row, (sentence, chunk) in enumerate(group):
                    into, take = owned_slices(chunk)
                    outputs[sentence].label_ids[:, into] = label_ids[:, row, take].cpu()
                    outputs[sentence].confidence[:, into] = confidence[:, row, take].cpu()
                    if keep_logits:
                        outputs[sentence].logits[:, into] = logits[:, row, take].float().cpu()
    finally:
        if was_training:
            model.train()
    return outputs
