"""Self-sampling fine-tuning (SSFT): train the exits, and the layers above them, on the copied
states that token-level early exit produces at inference.

For every training sentence a TOKEE setting (threshold, window) is drawn; the current model's
own per-layer uncertainties (a no-grad full forward) decide every word's exit layer
(`simulate_tokee`); the encoder then runs with those words frozen and copied forward exactly as
the engine does (`exit_logits` with per-word exit layers). In each batch a share of sentences runs at full
depth (anchoring the last exit) and a share at the most aggressive setting.

Loss: exit l is trained on the words still running at layer l (exit_layer >= l), weighted l/L:
a word is never trained at a layer it would not reach, and never on its own copied state. Its
target is the gold tag, or (`distill_share` > 0) partly or wholly the full-depth output of the
model SSFT started from: that teaches the layers to give the starting model's labels from copied
states, and holds full depth where it was instead of fitting the training set further.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import Sentence
from ..evaluation import evaluate_exits
from ..exits.halting import simulate_tokee
from .forward import exit_logits
from ..exits.uncertainty import normalised_entropy
from ..model import MultiExitTagger
from ..training_defaults import DEFAULT_FULL_DEPTH_TOLERANCE
from .config import TrainConfig
from .distill import distillation_loss
from .joint import IGNORE, TrainResult, train_joint


@dataclass
class SelfSamplingConfig:
    """How exits are sampled. Thresholds are drawn uniformly from [0, max_threshold], windows
    from `windows`; `full_share` of each batch runs at full depth and `aggressive_share` at
    (max_threshold, smallest window). distill_share: share of each exit's loss that is
    distillation from the starting model's full depth (0: gold only, 1: that output only)."""

    max_threshold: float = 0.5
    windows: tuple[int, ...] = (0, 1, 2)
    full_share: float = 0.25
    aggressive_share: float = 0.25
    exit_grad_scale: float = 1.0
    distill_share: float = 0.0

    def __post_init__(self) -> None:
        self.windows = tuple(int(k) for k in self.windows)
        if not self.windows or min(self.windows) < 0:
            raise ValueError("windows must be a non-empty list of half-widths >= 0")
        if self.max_threshold < 0 or not 0 <= self.full_share + self.aggressive_share <= 1:
            raise ValueError("max_threshold must be >= 0 and the two shares must sum to at most 1")
        if not 0 <= self.distill_share <= 1:
            raise ValueError(f"distill_share must lie in [0, 1], not {self.distill_share}")


class SelfSamplingObjective:
    """The SSFT batch loss (see the module docstring)."""

    def __init__(self, model: MultiExitTagger, config: TrainConfig, sampling: SelfSamplingConfig) -> None:
        self.sampling = sampling
        self.weights = torch.arange(1, model.num_layers + 1, dtype=torch.float) / model.num_layers
        self.generators = {
            "lower_exits": torch.Generator().manual_seed(config.seed + 1),
            "sampling": torch.Generator().manual_seed(config.seed + 2),
        }
        self.record = {"self_sampling": asdict(sampling)}
        self.teacher: MultiExitTagger | None = None
        if sampling.distill_share > 0:  # the model as SSFT found it, frozen
            self.teacher = copy.deepcopy(model).eval().requires_grad_(False)

    def sample_settings(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(thresholds, windows), one per sentence: (rows,) each."""
        rng, s = self.generators["sampling"], self.sampling
        thresholds = torch.rand(rows, generator=rng) * s.max_threshold
        windows = torch.tensor(s.windows)[torch.randint(len(s.windows), (rows,), generator=rng)]
        kind = torch.rand(rows, generator=rng)
        full = kind < s.full_share
        aggressive = (kind >= s.full_share) & (kind < s.full_share + s.aggressive_share)
        thresholds[full] = 0.0
        thresholds[aggressive], windows[aggressive] = s.max_threshold, min(s.windows)
        return thresholds, windows

    def __call__(self, model: MultiExitTagger, batch, labels: torch.Tensor) -> torch.Tensor:
        thresholds, windows = self.sample_settings(labels.shape[0])
        was_training = model.training
        model.eval()
        with torch.no_grad():
            uncertainty = normalised_entropy(model(batch))  # (layers, batch, words)
        model.train(was_training)
        exit_layer = simulate_tokee(uncertainty, batch.word_mask, thresholds.to(labels.device), windows.to(labels.device))
        logits = exit_logits(
            model, batch, exit_layer=exit_layer, exit_grad_scale=self.sampling.exit_grad_scale,
            lower_exit_generator=self.generators["lower_exits"],
        )  # (layers, batch, words, labels)
        share = self.sampling.distill_share
        teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher = exit_logits(self.teacher, batch, exits="last")[0]  # (batch, words, labels)
        loss = labels.new_zeros((), dtype=logits.dtype)
        for layer, (weight, layer_logits) in enumerate(zip(self.weights, logits)):
            running = labels.masked_fill(exit_layer <= layer, IGNORE)  # words that reach layer+1
            if not bool((running != IGNORE).any()):
                continue
            if share < 1:
                gold = F.cross_entropy(layer_logits.flatten(0, 1), running.reshape(-1), ignore_index=IGNORE)
                loss = loss + weight * (1 - share) * gold
            if teacher is not None:
                loss = loss + weight * share * distillation_loss(layer_logits, teacher, running != IGNORE)
        return loss


def train_self_sampling(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    sampling: SelfSamplingConfig | None = None,
    progress: bool = True,
) -> TrainResult:
    """SSFT on a trained multi-exit `model` (in place); the result is saved to `output_dir/model`.

    config gives the optimiser, schedule, epochs and seed; how much of the lower exits'
    gradient reaches the encoder is `sampling.exit_grad_scale` (config's is not used)."""
    sampling = sampling or SelfSamplingConfig()
    config = replace(config, exit_weights="layer", train_encoder=True)
    objective = SelfSamplingObjective(model, config, sampling)
    return train_joint(model, train, dev, config, output_dir, progress=progress, objective=objective)



@dataclass
class SelfSamplingOutcome:
    """What `train_self_sampling_guarded` measured and kept."""

    result: TrainResult
    full_depth_before: float
    full_depth_after: float
    kept: str  # "ssft" or "before"
    tolerance: float

    def to_dict(self) -> dict:
        return {"full_depth_dev_before": self.full_depth_before, "full_depth_dev_after": self.full_depth_after,
                "kept": self.kept, "tolerance": self.tolerance}


def train_self_sampling_guarded(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    sampling: SelfSamplingConfig | None = None,
    tolerance: float = DEFAULT_FULL_DEPTH_TOLERANCE,
    progress: bool = True,
) -> SelfSamplingOutcome:
    """SSFT that does not lower full depth: the last exit's dev score is measured before and
    after, and the SSFT model is kept only if it lost at most `tolerance` points; otherwise
    `model` gets its weights from before SSFT back (tolerance 0: keep the better of the two)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, not {tolerance}")
    before_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    before = evaluate_exits(model, dev, batch_size=config.eval_batch_size, layers="last")[0].score
    result = train_self_sampling(model, train, dev, config, output_dir, sampling=sampling, progress=progress)
    after = result.best_dev_score
    kept = "ssft" if after >= before - tolerance else "before"
    if kept == "before":
        model.load_state_dict(before_state)
    return SelfSamplingOutcome(result, before, after, kept, tolerance)
