"""Learned exit weights with mutual distillation (after LeeBERT), brought to tagging.

Joint multi-exit fine-tuning where the loss weight of every exit is learned with the model
instead of fixed at l / L, and every exit also learns from the others' label distributions:

    loss = sum_l exp(-s_l) * (CE_l + mutual * MD_l) + s_l
    MD_l = mean over j != l of T^2 * KL(p_j || p_l), the p_j detached

s_l is one learned scalar per exit. LeeBERT learns its weights by cross-level (bilevel)
optimisation; here they follow the homoscedastic-uncertainty rule (Kendall et al., 2018),
which needs no held-out split or second-order step: at its optimum exp(-s_l) = 1 / loss_l,
so the exits that can be fitted well (the deeper ones) get the larger weights, and no exit's
weight can collapse to zero (s_l is penalised linearly).
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
from .distill import distillation_loss
from .joint import IGNORE, TrainResult, train_joint
from ..training_defaults import DEFAULT_MUTUAL

WEIGHTS_LEARNING_RATE = 1e-2  # the log-weights are a handful of scalars: they may move fast


class LearnedWeightsObjective:
    """The loss in the module docstring; `parameters` holds the log-variances s (one per exit)."""

    def __init__(self, model: MultiExitTagger, config: TrainConfig, *, mutual: float = DEFAULT_MUTUAL,
                 temperature: float = 1.0) -> None:
        if mutual < 0 or temperature <= 0:
            raise ValueError("mutual must be >= 0 and temperature > 0")
        self.mutual, self.temperature = mutual, temperature
        self.exit_grad_scale = config.exit_grad_scale
        self.log_variance = torch.zeros(model.num_layers, requires_grad=True)  # s_l
        self.parameters = {"log_variance": self.log_variance}
        self.parameters_lr = WEIGHTS_LEARNING_RATE
        self.generators = {"lower_exits": torch.Generator().manual_seed(config.seed + 1)}
        self.record = {"learned_weights": {"mutual": mutual, "temperature": temperature,
                                           "weights_learning_rate": WEIGHTS_LEARNING_RATE}}

    def weights(self) -> list[float]:
        """The current loss weight exp(-s_l) of every exit."""
        return [round(float(w), 4) for w in torch.exp(-self.log_variance.detach())]

    def summary(self) -> dict:
        return {"exit_weights": self.weights()}

    def __call__(self, model: MultiExitTagger, batch, labels: torch.Tensor) -> torch.Tensor:
        logits = exit_logits(model, batch, exits="all", exit_grad_scale=self.exit_grad_scale,
                       lower_exit_generator=self.generators["lower_exits"])  # (layers, batch, words, labels)
        flat = labels.reshape(-1)
        mask = labels != IGNORE  # (batch, words)
        layers = logits.shape[0]
        loss = logits.new_zeros(())
        for l, layer_logits in enumerate(logits):
            term = F.cross_entropy(layer_logits.reshape(flat.numel(), -1), flat, ignore_index=IGNORE)
            if self.mutual and layers > 1:
                others = [distillation_loss(layer_logits, logits[j], mask, self.temperature) for j in range(layers) if j != l]
                term = term + self.mutual * sum(others) / len(others)
            s = self.log_variance[l]
            loss = loss + torch.exp(-s) * term + s
        return loss


def train_learned_weights(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    mutual: float = DEFAULT_MUTUAL,
    progress: bool = True,
) -> TrainResult:
    """Joint fine-tuning of the whole model with learned exit weights and mutual distillation;
    every exit's gradient reaches the encoder. The best epoch (last exit's dev score) is saved
    to `output_dir/model`; each epoch's learned weights are in the result's history."""
    config = replace(config, exit_weights="layer", train_encoder=True, exit_grad_scale=1.0)
    objective = LearnedWeightsObjective(model, config, mutual=mutual)
    return train_joint(model, train, dev, config, output_dir, progress=progress, objective=objective)
