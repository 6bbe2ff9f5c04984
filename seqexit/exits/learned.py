"""Learned exit decisions (BERxiT): after the exits are trained, a small head per layer learns,
with the encoder and exits frozen, whether that layer's label for a word already equals the last
exit's. The "learned" criterion halts a word when its head says so with probability above the
threshold. Heads live next to the model as `learned_exits.safetensors`."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..files import umask_mode

LEARNED_EXITS_FILE = "learned_exits.safetensors"


class LearnedExitHeads(nn.Module):
    """One linear unit per layer below the last: hidden state at a word's first piece ->
    logit of "this exit's label is the last exit's" (the last layer always ends)."""

    def __init__(self, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in range(num_layers - 1))

    def forward(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """features (..., hidden) at layer `layer` (0-based, below the last) -> logits (...)."""
        return self.heads[layer](features.float())[..., 0]

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LEARNED_EXITS_FILE
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(path))
        umask_mode(path)  # readable like the model's other files
        return path


def load_learned_exits(folder: Path, hidden_size: int, num_layers: int) -> LearnedExitHeads | None:
    """The heads stored in a model folder, or None when it has none."""
    path = folder / LEARNED_EXITS_FILE
    if not path.is_file():
        return None
    heads = LearnedExitHeads(hidden_size, num_layers)
    try:
        heads.load_state_dict(load_file(str(path)))
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit this model ({num_layers} layers, hidden {hidden_size}): {err}") from None
    return heads.eval()
