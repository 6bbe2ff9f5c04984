"""Sentences in, labels per word out: chunking, length-sorted batching, merging back.

`run_policy` is inference under an `ExitPolicy` (full, static, SENTEE, TOKEE) with a FLOP
count; `run_exits` reads every exit at once for per-exit evaluation. Sentences longer than the
encoder are split into overlapping windows; each word takes its label from the window that owns
it (`EncodedChunk.owned_words`), so every word gets exactly one label, in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..model import MultiExitTagger
from ..pieces import Batch, EncodedChunk
from .flops import FlopCounter
from .halting import exit_batch, new_counter
from .policy import ExitPolicy


@dataclass
class WordExits:
    """One sentence's result under a policy."""

    label_ids: torch.Tensor  # (words,) long
    confidence: torch.Tensor  # (words,) float
    exit_layer: torch.Tensor  # (words,) long, 1-based

    def labels(self, model: MultiExitTagger) -> list[str]:
        return [model.labels[i] for i in self.label_ids.tolist()]


@dataclass
class PolicyRun:
    """Results in input order plus the FLOPs spent and what full depth would have cost."""

    sentences: list[WordExits]
    flops: FlopCounter
    words_per_layer: list[int] = field(default_factory=list)  # how many words exited at each layer


@dataclass
class ExitOutputs:
    """Per sentence: label ids and confidences (max probability), one row per exit returned."""

    label_ids: torch.Tensor  # (n_exits, words) long
    confidence: torch.Tensor  # (n_exits, words) float

    def labels(self, model: MultiExitTagger, row: int = -1) -> list[str]:
        return [model.labels[i] for i in self.label_ids[row].tolist()]


def _batches(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], batch_size: int
) -> Iterator[tuple[list[tuple[int, EncodedChunk]], Batch]]:
    """Length-sorted batches of (sentence index, chunk) with their collated tensors."""
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
    for start in range(0, len(chunks), batch_size):
        group = chunks[start : start + batch_size]
        yield group, model.pieces.collate([chunk for _, chunk in group]).to(device)


def _owned(chunk: EncodedChunk) -> tuple[slice, slice]:
    """(slice into the sentence, slice into the chunk's words) of the words this chunk labels."""
    start, end = chunk.owned_words
    return slice(start, end), slice(start - chunk.word_offset, end - chunk.word_offset)


@torch.inference_mode()
def run_policy(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], policy: ExitPolicy, *, batch_size: int = 32
) -> PolicyRun:
    """Label every word of `sentences` (word lists) with early exit under `policy`."""
    was_training = model.training
    model.eval()
    results = [
        WordExits(torch.zeros(len(w), dtype=torch.long), torch.zeros(len(w)), torch.zeros(len(w), dtype=torch.long))
        for w in sentences
    ]
    counter = new_counter(model)
    try:
        for group, batch in _batches(model, sentences, batch_size):
            exits = exit_batch(model, batch, policy)
            counter.merge(exits.flops)
            label_ids, confidence, exit_layer = exits.label_ids.cpu(), exits.confidence.float().cpu(), exits.exit_layer.cpu()
            for row, (sentence, chunk) in enumerate(group):
                into, take = _owned(chunk)
                results[sentence].label_ids[into] = label_ids[row, take]
                results[sentence].confidence[into] = confidence[row, take]
                results[sentence].exit_layer[into] = exit_layer[row, take]
    finally:
        model.train(was_training)
    per_layer = torch.zeros(model.num_layers + 1, dtype=torch.long)
    for result in results:
        per_layer += torch.bincount(result.exit_layer, minlength=model.num_layers + 1)
    return PolicyRun(results, counter, per_layer[1:].tolist())


@torch.inference_mode()
def run_exits(
    model: MultiExitTagger,
    sentences: Sequence[Sequence[str]],
    *,
    batch_size: int = 32,
    num_layers: int | None = None,
    all_exits: bool = False,
) -> list[ExitOutputs]:
    """Run `model` on word lists. all_exits=False returns one row (the deepest layer run);
    True returns one row per layer 1..num_layers (for per-exit evaluation)."""
    was_training = model.training
    model.eval()
    depth = num_layers or model.num_layers
    n_rows = depth if all_exits else 1
    outputs = [
        ExitOutputs(torch.zeros(n_rows, len(words), dtype=torch.long), torch.zeros(n_rows, len(words)))
        for words in sentences
    ]
    try:
        for group, batch in _batches(model, sentences, batch_size):
            logits = model(batch, num_layers=depth, exits="all" if all_exits else "last")  # (rows, batch, words, labels)
            confidence, label_ids = logits.float().softmax(-1).max(-1)  # (rows, batch, words)
            for row, (sentence, chunk) in enumerate(group):
                into, take = _owned(chunk)
                outputs[sentence].label_ids[:, into] = label_ids[:, row, take].cpu()
                outputs[sentence].confidence[:, into] = confidence[:, row, take].cpu()
    finally:
        model.train(was_training)
    return outputs
