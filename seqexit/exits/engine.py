"""Batched inference over a `MultiExitTagger`: full depth, a static exit, or every exit at once.

Sentences are split into chunks that fit the encoder, sorted by length so batches carry little
padding, run, and scattered back into input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..model import MultiExitTagger


@dataclass
class ExitOutputs:
    """Per sentence: label ids and confidences (max probability), one row per exit returned."""

    label_ids: torch.Tensor  # (n_exits, words) long
    confidence: torch.Tensor  # (n_exits, words) float

    def labels(self, model: MultiExitTagger, row: int = -1) -> list[str]:
        return [model.labels[i] for i in self.label_ids[row].tolist()]


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
    if model.pieces is None:
        raise ValueError("the model has no tokenizer attached")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    depth = num_layers or model.num_layers
    n_rows = depth if all_exits else 1
    outputs = [
        ExitOutputs(torch.zeros(n_rows, len(words), dtype=torch.long), torch.zeros(n_rows, len(words)))
        for words in sentences
    ]
    chunks = [
        (sentence, chunk)
        for sentence, sentence_chunks in enumerate(model.pieces.encode(sentences))
        for chunk in sentence_chunks
        if chunk.n_words
    ]
    chunks.sort(key=lambda item: len(item[1].input_ids))
    for start in range(0, len(chunks), batch_size):
        group = chunks[start : start + batch_size]
        batch = model.pieces.collate([chunk for _, chunk in group]).to(device)
        logits = model(batch, num_layers=depth, exits="all" if all_exits else "last")  # (rows, batch, words, labels)
        confidence, label_ids = logits.float().softmax(-1).max(-1)  # (rows, batch, words)
        for row, (sentence, chunk) in enumerate(group):
            span = slice(chunk.word_offset, chunk.word_offset + chunk.n_words)
            outputs[sentence].label_ids[:, span] = label_ids[:, row, : chunk.n_words].cpu()
            outputs[sentence].confidence[:, span] = confidence[:, row, : chunk.n_words].cpu()
    model.train(was_training)
    return outputs
