"""The training forward: every exit's logits, with the gradient from the lower exits into the
encoder scaled (`exit_grad_scale`) and their dropout drawn from a stream of its own.

It runs the model's one layer loop (`MultiExitTagger.layer_states`); only what the exits read
differs from inference."""

from __future__ import annotations

import torch

from ..model import MultiExitTagger, WordPast
from ..pieces import Batch


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by `scale` on the way back (0 detaches)."""
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return _ScaleGrad.apply(x, scale)


def exit_logits(
    model: MultiExitTagger,
    batch: Batch,
    *,
    exits: str = "all",
    exit_layer: torch.Tensor | None = None,
    exit_grad_scale: float = 1.0,
    lower_exit_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n_exits, batch, words, labels), as `MultiExitTagger.forward` returns them.

    exits: "all" or "last"; exit_layer: (batch, words) per-word exit layers (self-sampling).
    exit_grad_scale: gradient multiplier from the exits below the last one into the encoder
        (1: plain joint training; 0: the encoder learns from the last exit only).
    lower_exit_generator: the exits below the last draw their dropout masks from this
        generator, so that the encoder's and the last exit's dropout see the same random stream
        as an ordinary (last-exit-only) fine-tune with the same seed."""
    last = model.num_layers - 1
    logits = []
    past: list[WordPast] | None = [] if model.reads_past else None
    for layer, hidden in enumerate(model.layer_states(batch, exit_layer=exit_layer, past=past)):
        if layer == last:
            logits.append(model.read_exit(layer, hidden, batch.word_starts, past=past[0].mean() if past else None))
        elif exits == "all":
            states = scale_grad(hidden, exit_grad_scale)  # (batch, pieces, hidden)
            below = scale_grad(past[0].mean(), exit_grad_scale) if past else None
            logits.append(model.read_exit(layer, states, batch.word_starts, lower_exit_generator, below))
    return torch.stack(logits)
