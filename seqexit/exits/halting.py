"""One padded batch through the encoder under an `ExitPolicy`: the layer loop with exits.

TOKEE: after every layer each still-active word is read by that layer's exit; a word whose
window uncertainty is below the threshold halts there (label, confidence, exit layer fixed) and
so do all its word pieces. Later layers run queries, attention output and the feed-forward block
on the active pieces only (packed across the batch, `EncoderAdapter.run_layer_active`); keys and
values still come from every piece, halted ones with their frozen states. [CLS]/[SEP] belong to
no word: they run while their sentence does. SENTEE is the same loop where a sentence halts as a
whole. A sentence with no active word leaves the batch, and the batch is trimmed to the longest
sentence still running.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import MultiExitTagger, scale_grad
from ..pieces import Batch
from .flops import FlopCounter
from .policy import ExitPolicy
from .uncertainty import normalised_entropy, window_uncertainty


@dataclass
class BatchExits:
    """Per word of a batch: the exit that labelled it, and what it said."""

    label_ids: torch.Tensor  # (batch, words) long
    confidence: torch.Tensor  # (batch, words) float, max probability at the exit
    exit_layer: torch.Tensor  # (batch, words) long, 1-based; 0 on padding
    logits: torch.Tensor  # (batch, words, labels) at the exit layer
    flops: FlopCounter  # spent on this batch, and what a full forward of it would cost
    hidden: torch.Tensor | None = None  # (batch, pieces, hidden) final states, if asked for


def piece_words(batch: Batch) -> torch.Tensor:
    """(batch, pieces) long: the word each piece belongs to, -1 for [CLS], [SEP] and padding."""
    marks = torch.zeros_like(batch.input_ids).scatter_(1, batch.word_starts, batch.word_mask.long())
    index = marks.cumsum(1) - 1
    last = batch.attention_mask.sum(1, keepdim=True) - 1  # [SEP]
    positions = torch.arange(index.shape[1], device=index.device)[None, :]
    return index.masked_fill(positions >= last, -1)


def new_counter(model: MultiExitTagger) -> FlopCounter:
    """A zeroed FLOP counter sized for `model`."""
    parts = model.adapter.layers[0]
    return FlopCounter(parts.query.in_features, parts.ffn_in.out_features, len(model.labels), model.num_layers)


def exit_batch(model: MultiExitTagger, batch: Batch, policy: ExitPolicy, *, keep_hidden: bool = False) -> BatchExits:
    """Run `batch` under `policy` (call under torch.inference_mode for inference)."""
    counter = new_counter(model)
    n_pieces, n_words = batch.attention_mask.sum(1), batch.word_mask.sum(1)
    counter.full_forward(n_pieces, n_words)
    hidden = model.adapter.embed(batch.input_ids)  # (batch, pieces, hidden)
    if policy.mode in ("full", "static"):
        return _static(model, batch, hidden, policy.exit_depth(model.num_layers), counter, keep_hidden)
    return _dynamic(model, batch, hidden, policy, counter, keep_hidden)


def _static(model, batch, hidden, depth, counter, keep_hidden) -> BatchExits:
    n_pieces = batch.attention_mask.sum(1)
    for layer in range(depth):
        hidden = model.adapter.run_layer(layer, hidden, batch.attention_mask)
        counter.layer(n_pieces, n_pieces)
    index = batch.word_starts[..., None].expand(-1, -1, hidden.shape[-1])
    logits = model.exits[depth - 1](hidden.gather(1, index))  # (batch, words, labels)
    counter.exits(batch.word_mask.sum())
    confidence, label_ids = logits.float().softmax(-1).max(-1)
    exit_layer = batch.word_mask.long() * depth
    return BatchExits(label_ids, confidence, exit_layer, logits, counter, hidden if keep_hidden else None)


@dataclass
class _Running:
    """The rows of a batch that are still running; every tensor is (rows, ...)."""

    rows: torch.Tensor  # (rows,) index into the batch
    hidden: torch.Tensor  # (rows, pieces, hidden)
    key_mask: torch.Tensor  # (rows, pieces)
    owner: torch.Tensor  # (rows, pieces) word of each piece, -1 for none
    word_starts: torch.Tensor  # (rows, words)
    word_mask: torch.Tensor  # (rows, words)
    active: torch.Tensor  # (rows, words) words not halted yet
    uncertainty: torch.Tensor  # (rows, words) latest normalised entropy
    labels: torch.Tensor  # (rows, words) latest label (fixed once halted)
    confidence: torch.Tensor  # (rows, words)
    exit_layer: torch.Tensor  # (rows, words)
    logits: torch.Tensor  # (rows, words, labels)

    def keep(self, rows: torch.Tensor) -> _Running:
        """Only `rows` (bool), trimmed to the longest of them in pieces and in words."""
        pieces = int(self.key_mask[rows].sum(1).max())
        words = int(self.word_mask[rows].sum(1).max())
        by_piece = ("hidden", "key_mask", "owner")
        return _Running(**{
            name: value[rows] if name == "rows" else value[rows][:, : pieces if name in by_piece else words]
            for name, value in vars(self).items()
        })


def _dynamic(model, batch, hidden, policy, counter, keep_hidden) -> BatchExits:
    num_layers, tokee = model.num_layers, policy.mode == "tokee"
    thresholds = policy.thresholds(num_layers)
    size, n_words = batch.word_mask.shape
    device = hidden.device
    out = BatchExits(
        label_ids=torch.zeros(size, n_words, dtype=torch.long, device=device),
        confidence=torch.zeros(size, n_words, device=device),
        exit_layer=torch.zeros(size, n_words, dtype=torch.long, device=device),
        logits=torch.zeros(size, n_words, len(model.labels), device=device, dtype=hidden.dtype),
        flops=counter,
        hidden=hidden.new_zeros(hidden.shape) if keep_hidden else None,
    )
    run = _Running(
        rows=torch.arange(size, device=device), hidden=hidden, key_mask=batch.attention_mask, owner=piece_words(batch),
        word_starts=batch.word_starts, word_mask=batch.word_mask, active=batch.word_mask.clone(),
        uncertainty=torch.zeros(size, n_words, device=device), labels=torch.zeros_like(batch.word_starts),
        confidence=torch.zeros(size, n_words, device=device), exit_layer=torch.zeros_like(batch.word_starts),
        logits=out.logits.clone(),
    )
    for layer in range(num_layers):
        pieces_active = run.key_mask & ((run.owner < 0) | run.active.gather(1, run.owner.clamp(min=0)))
        if not tokee or bool(pieces_active.eq(run.key_mask).all()):
            run.hidden = model.adapter.run_layer(layer, run.hidden, run.key_mask)
        else:
            run.hidden = model.adapter.run_layer_active(layer, run.hidden, run.key_mask, pieces_active)
        counter.layer(run.key_mask.sum(1), pieces_active.sum(1))

        rows, cols = run.active.nonzero(as_tuple=True)  # (M,) active words
        logits = model.exits[layer](run.hidden[rows, run.word_starts[rows, cols]])  # (M, labels)
        counter.exits(rows.numel())
        confidence, labels = logits.float().softmax(-1).max(-1)
        run.uncertainty[rows, cols] = normalised_entropy(logits)
        run.labels[rows, cols], run.confidence[rows, cols] = labels, confidence
        run.logits[rows, cols], run.exit_layer[rows, cols] = logits, layer + 1

        if layer == num_layers - 1:
            halt = run.active
        else:
            certain = window_uncertainty(run.uncertainty, run.word_mask, policy.window) < thresholds[layer]
            halt = run.active & (certain if tokee else (certain | ~run.word_mask).all(1, keepdim=True))
        run.active = run.active & ~halt
        finished = ~run.active.any(1)
        if bool(finished.any()):
            done, words, pieces = run.rows[finished], run.word_mask.shape[1], run.key_mask.shape[1]
            out.label_ids[done, :words] = run.labels[finished]
            out.confidence[done, :words] = run.confidence[finished]
            out.exit_layer[done, :words] = run.exit_layer[finished] * run.word_mask[finished]
            out.logits[done, :words] = run.logits[finished]
            if keep_hidden:
                out.hidden[done, :pieces] = run.hidden[finished]
            if bool(finished.all()):
                break
            run = run.keep(~finished)
    return out


def simulate_tokee(
    uncertainty: torch.Tensor, word_mask: torch.Tensor, thresholds: torch.Tensor, windows: torch.Tensor
) -> torch.Tensor:
    """The exit layer TOKEE would give every word, decided on precomputed uncertainties.

    uncertainty: (layers, batch, words) from a full forward; thresholds, windows: (batch,) one
    setting per sentence. A halted word keeps the uncertainty it had at its exit, as in the
    engine. Returns (batch, words) long, 1-based, 0 on padding."""
    num_layers = uncertainty.shape[0]
    active = word_mask.clone()
    current = torch.zeros_like(uncertainty[0])
    exit_layer = torch.zeros_like(word_mask, dtype=torch.long)
    for layer in range(num_layers):
        current = torch.where(active, uncertainty[layer], current)
        if layer == num_layers - 1:
            halt = active
        else:
            window = torch.zeros_like(current)
            for k in windows.unique().tolist():
                rows = windows == k
                window[rows] = window_uncertainty(current[rows], word_mask[rows], int(k))
            halt = active & (window < thresholds[:, None])
        exit_layer[halt] = layer + 1
        active = active & ~halt
    return exit_layer


def forward_with_exit_layers(
    model: MultiExitTagger,
    batch: Batch,
    exit_layer: torch.Tensor,
    *,
    exit_grad_scale: float = 1.0,
    lower_exit_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A differentiable forward where word i stops at exit_layer[i] (batch, words), 1-based.

    The encoder runs exactly as the engine does at inference: a halted word's pieces are frozen
    and serve only as keys/values. Every exit reads every word (halted words see their frozen
    state); returns (layers, batch, words, labels). exit_grad_scale and lower_exit_generator act
    on the exits below the last as in `MultiExitTagger.forward`."""
    hidden = model.adapter.embed(batch.input_ids)
    owner = piece_words(batch)
    index = batch.word_starts[..., None].expand(-1, -1, hidden.shape[-1])
    logits = []
    for layer in range(model.num_layers):
        running = (exit_layer > layer) & batch.word_mask  # (batch, words) words this layer updates
        pieces_active = batch.attention_mask & torch.where(
            owner < 0, running.any(1, keepdim=True), running.gather(1, owner.clamp(min=0))
        )
        if bool(pieces_active.eq(batch.attention_mask).all()):
            hidden = model.adapter.run_layer(layer, hidden, batch.attention_mask)
        else:
            hidden = model.adapter.run_layer_active(layer, hidden, batch.attention_mask, pieces_active)
        at_words = hidden.gather(1, index)
        if layer == model.num_layers - 1:
            logits.append(model.exits[layer](at_words))
        else:
            logits.append(model.exits[layer](scale_grad(at_words, exit_grad_scale), lower_exit_generator))
    return torch.stack(logits)
