"""Two-stage training: an ordinary fine-tune (last exit only), then the lower exits alone on its
frozen encoder. Full depth is exactly the ordinary fine-tune; the lower exits come on top."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..data import Sentence
from ..model import MultiExitTagger
from .config import TrainConfig
from .joint import TrainResult, train_joint

EXITS_LEARNING_RATE = 1e-3  # linear heads on fixed features learn faster than a fine-tuned encoder


def train_two_stage(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    exits_config: TrainConfig | None = None,
    progress: bool = True,
) -> tuple[TrainResult, TrainResult]:
    """Stage 1 writes `output_dir/encoder`, stage 2 `output_dir/model` (the final model).

    config drives stage 1 (its exit settings are overridden); exits_config stage 2 (default:
    config's epochs and seed, learning rate 1e-3). Each stage resumes from its own checkpoint.
    """
    output_dir = Path(output_dir)
    first = train_joint(model, train, dev, replace(config, exit_weights="last", train_encoder=True),
                        output_dir / "encoder", progress=progress)
    second_config = exits_config or replace(config, learning_rate=EXITS_LEARNING_RATE)
    second = train_joint(model, train, dev, replace(second_config, exit_weights="layer", train_encoder=False),
                         output_dir, progress=progress)
    return first, second
