"""Self-distillation (FastBERT, brought to tagging): an ordinary fine-tune, then every lower exit
learns the last exit's label distribution, word by word, on the frozen encoder.

The teacher is the model's own last exit, so no gold is needed in the second stage: unlabelled
text can be added to the training sentences. Full depth is the ordinary fine-tune by
construction, as in the two-stage recipe; only the lower exits' targets differ (soft labels
of the teacher instead of gold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import Sentence
from ..model import MultiExitTagger
from .config import TrainConfig
from .forward import exit_logits
from .joint import TrainResult, train_joint
from .two_stage import EXITS_LEARNING_RATE
from ..training_defaults import DEFAULT_TEMPERATURE


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Mean over the masked words of T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    student, teacher: (..., labels) logits; mask: (...) bool, the words that count.
    Zero exactly when the two distributions agree on every masked word."""
    if not bool(mask.any()):
        return student.sum() * 0.0
    s = F.log_softmax(student[mask] / temperature, dim=-1)  # (words, labels)
    t = F.log_softmax(teacher[mask].detach() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)  # (words,)
    return kl.mean() * temperature**2


class DistillObjective:
    """sum over exits l < L of distillation_loss(exit l, exit L) on a frozen encoder."""

    uses_gold = False

    def __init__(self, model: MultiExitTagger, config: TrainConfig, temperature: float = DEFAULT_TEMPERATURE) -> None:
        if config.train_encoder:
            raise ValueError("self-distillation trains the lower exits on a frozen encoder: train_encoder must be False")
        if temperature <= 0:
            raise ValueError(f"the distillation temperature must be > 0, not {temperature}")
        self.temperature = temperature
        self.generators = {"lower_exits": torch.Generator().manual_seed(config.seed + 1)}
        self.record = {"distill": {"temperature": temperature}}

    def __call__(self, model: MultiExitTagger, batch, labels: torch.Tensor) -> torch.Tensor:
        logits = exit_logits(model, batch, exits="all", exit_grad_scale=0.0,
                       lower_exit_generator=self.generators["lower_exits"])  # (layers, batch, words, labels)
        teacher = logits[-1].detach()
        return sum(distillation_loss(student, teacher, batch.word_mask, self.temperature) for student in logits[:-1])


def train_distill(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    unlabelled: Sequence[Sentence] = (),
    temperature: float = DEFAULT_TEMPERATURE,
    exits_config: TrainConfig | None = None,
    progress: bool = True,
) -> tuple[TrainResult, TrainResult]:
    """Stage 1 (the ordinary fine-tune) writes `output_dir/encoder`, stage 2 (distillation into
    the lower exits, on `train` plus `unlabelled`) `output_dir/model`. Each stage resumes from
    its checkpoint; stage 1 is the same run as the two-stage recipe's."""
    output_dir = Path(output_dir)
    first = train_joint(model, train, dev, replace(config, exit_weights="last", train_encoder=True),
                        output_dir / "encoder", progress=progress)
    second_config = replace(exits_config or replace(config, learning_rate=EXITS_LEARNING_RATE),
                            exit_weights="layer", train_encoder=False)
    objective = DistillObjective(model, second_config, temperature)
    second = train_joint(model, train, dev, second_config, output_dir, progress=progress,
                         objective=objective, unlabelled=unlabelled)
    return first, second
