"""Joint multi-exit fine-tuning: every exit's loss in one backward pass, one shared loop.

loss = sum_l w_l * CE_l over the words of the batch, with w_l = l / L ("layer": deeper exits
count more, the last exit's loss at the ordinary fine-tune's scale) or w_L = 1 ("last", the
ordinary fine-tune). AdamW, linear warm-up then linear decay, gradient clipping, dev-set
selection on the last exit, checkpoints that resume to the same result.

With exit_grad_scale=0 the encoder and the last exit follow exactly the updates of an ordinary
fine-tune with the same seed: the lower exits' gradient stays out of the encoder, their dropout
draws from a generator of their own, and their gradient is clipped apart from the encoder's.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..casing import LEARNING_RATE_SCALE, is_casing_parameter
from ..data import Sentence
from ..evaluation import evaluate_exits
from ..evaluation.exits import check_labels
from ..bundle import load_model, save_model
from ..model import MultiExitTagger
from ..pieces import EncodedChunk
from .checkpoint import load_checkpoint, replace_dir, save_checkpoint
from .config import TrainConfig
from .forward import exit_logits

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class TrainResult:
    best_dev_score: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_dir: str = ""
    config: dict = field(default_factory=dict)  # the run's settings, the objective's included


def exit_weights(num_layers: int, scheme: str) -> torch.Tensor:
    """Loss weight of every exit: proportional to depth, the last exit's weight 1.

    The issue-style normalisation by sum(1..L) would change nothing under Adam but the
    gradient-clipping threshold's meaning; with w_L = 1 the last exit's gradient is the one an
    ordinary fine-tune clips."""
    if scheme == "last":
        weights = torch.zeros(num_layers)
        weights[-1] = 1.0
        return weights
    return torch.arange(1, num_layers + 1, dtype=torch.float) / num_layers


class Objective(Protocol):
    """The loss of one training batch; the loop around it (optimiser, schedule, checkpoints,
    dev selection) is shared. `generators` are saved in checkpoints so a resumed run draws
    the same random numbers; `record` goes into the checkpoint's config check.

    Optional members the loop also uses: `parameters` (a dict of the objective's own trainable
    tensors, e.g. learned loss weights: optimised at `parameters_lr`, saved in checkpoints),
    `summary()` (a dict added to each epoch's history) and `uses_gold = False` (the loss reads
    no gold tags, so unlabelled sentences may be trained on as well)."""

    generators: dict[str, torch.Generator]
    record: dict

    def __call__(self, model: MultiExitTagger, batch, labels: torch.Tensor) -> torch.Tensor: ...


class JointObjective:
    """sum_l w_l * CE_l over every word of the batch (see the module docstring)."""

    def __init__(self, model: MultiExitTagger, config: TrainConfig) -> None:
        self.weights = exit_weights(model.num_layers, config.exit_weights)
        if not config.train_encoder:
            self.weights[-1] = 0.0
        self.config = config
        self.generators = {"lower_exits": torch.Generator().manual_seed(config.seed + 1)}
        self.record = {}

    def __call__(self, model: MultiExitTagger, batch, labels: torch.Tensor) -> torch.Tensor:
        only_last = self.config.exit_weights == "last"
        logits = exit_logits(model, batch, exits="last" if only_last else "all", exit_grad_scale=self.config.exit_grad_scale,
                       lower_exit_generator=self.generators["lower_exits"])  # (exits, batch, words, labels)
        used = self.weights[-1:] if only_last else self.weights
        flat = labels.reshape(-1)
        return sum(w * F.cross_entropy(l.reshape(flat.numel(), -1), flat, ignore_index=IGNORE) for w, l in zip(used, logits))


def build_examples(
    model: MultiExitTagger, sentences: Sequence[Sentence], *, labelled: bool = True
) -> list[tuple[EncodedChunk, list[int]]]:
    """(chunk, label id per word) for every chunk of every sentence; unlabelled sentences'
    words carry IGNORE (for objectives that read no gold)."""
    if labelled:
        check_labels(model, sentences)
    index = {label: i for i, label in enumerate(model.labels)}
    examples = []
    for sentence, chunks in zip(sentences, model.pieces.encode([s.words for s in sentences])):
        for chunk in chunks:
            if labelled:
                ids = [index[t] for t in sentence.tags[chunk.word_offset : chunk.word_offset + chunk.n_words]]
            else:
                ids = [IGNORE] * chunk.n_words
            examples.append((chunk, ids))
    return examples


def train_joint(
    model: MultiExitTagger,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    progress: bool = True,
    objective: Objective | None = None,
    unlabelled: Sequence[Sentence] = (),
) -> TrainResult:
    """Fine-tune `model` in place; the best model on dev is saved to `output_dir/model`.

    objective: the batch loss (default: `JointObjective`, joint multi-exit training).
    unlabelled: sentences without gold, shuffled in with `train`; only for objectives that
        read no gold (`uses_gold = False`, e.g. self-distillation).

    A run that finds `output_dir/checkpoint` resumes from it (same config required) and ends
    with the same weights as an uninterrupted run.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    objective = objective or JointObjective(model, config)
    if unlabelled and getattr(objective, "uses_gold", True):
        raise ValueError("unlabelled sentences need an objective that reads no gold tags (self-distillation)")
    examples = build_examples(model, train) + (build_examples(model, unlabelled, labelled=False) if unlabelled else [])
    extra = getattr(objective, "parameters", {})
    for param in model.parameters():  # set afresh: an earlier stage in this process may have frozen some
        param.requires_grad_(True)
    if config.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if not config.train_encoder:
        for param in [*model.encoder.parameters(), *model.exits[-1].parameters()]:
            param.requires_grad_(False)
    optimizer = _optimizer(model, config, extra, getattr(objective, "parameters_lr", config.learning_rate))
    clip_groups = _clip_groups(model)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / max(1, warmup) if step < warmup else max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    )
    run_config = json.loads(json.dumps(asdict(config) | objective.record))  # as the checkpoint will read it back
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "history": [], "seconds": 0.0, "config": run_config}
    checkpoint = output_dir / "checkpoint"
    if (checkpoint / "state.json").exists():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, objective.generators, extra)
        if state["config"] != run_config:
            raise ValueError(f"{checkpoint} was written with another training config; use a new output folder")
        log.info("resuming from epoch %d step %d", state["epoch"] + 1, state["step"])

    started = time.perf_counter() - state["seconds"]
    _train_mode(model, config)
    for epoch in range(state["epoch"], config.epochs):
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch)).tolist()
        bar = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", initial=state["step"], disable=not progress
        )
        for step in range(state["step"], steps_per_epoch):
            group = [examples[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
            loss = _step(model, group, objective)
            for params in clip_groups:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            global_step = epoch * steps_per_epoch + step + 1
            if config.checkpoint_every and global_step % config.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                state.update(epoch=epoch, step=step + 1, seconds=time.perf_counter() - started)
                save_checkpoint(checkpoint, model, optimizer, scheduler, state, objective.generators, extra)
        bar.close()
        score, what = _dev_score(model, dev, config)
        _train_mode(model, config)
        summary = objective.summary() if hasattr(objective, "summary") else {}
        state["history"].append({"epoch": epoch + 1, "dev": score, "metric": what} | summary)
        message = f"epoch {epoch + 1}: dev {what} {score:.2f}"
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch + 1)
            replace_dir(lambda folder: save_model(model, folder), output_dir / "model")
            message += " (best so far, saved)"
        log.info(message)
        if progress:
            tqdm.write(message)
        state.update(epoch=epoch + 1, step=0, seconds=time.perf_counter() - started)
        save_checkpoint(checkpoint, model, optimizer, scheduler, state, objective.generators, extra)

    result = TrainResult(state["best"], state["best_epoch"], state["history"], state["seconds"], str(output_dir / "model"),
                         run_config)
    (output_dir / "train_result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    best = load_model(output_dir / "model", device=next(model.parameters()).device)
    model.load_state_dict(best.state_dict())
    model.eval()
    return result


def _train_mode(model: MultiExitTagger, config: TrainConfig) -> None:
    model.train()
    if not config.train_encoder:
        model.encoder.eval()  # frozen: inference-time features and last exit, no dropout
        model.exits[-1].eval()


def _dev_score(model: MultiExitTagger, dev: Sequence[Sentence], config: TrainConfig) -> tuple[float, str]:
    """The model-selection score: the last exit's, or the lower exits' mean when only they learn."""
    if config.train_encoder:
        last = evaluate_exits(model, dev, batch_size=config.eval_batch_size, layers="last")[0]
        return last.score, f"{last.metric} (last exit)"
    lower = evaluate_exits(model, dev, batch_size=config.eval_batch_size)[:-1]
    return sum(s.score for s in lower) / len(lower), f"{lower[0].metric} (mean of exits 1-{len(lower)})"


def _step(model: MultiExitTagger, group, objective: Objective) -> float:
    """Forward + backward of one batch; returns the loss."""
    device = next(model.parameters()).device
    batch = model.pieces.collate([chunk for chunk, _ in group]).to(device)
    labels = torch.full(batch.word_mask.shape, IGNORE, dtype=torch.long)
    for row, (_, ids) in enumerate(group):
        labels[row, : len(ids)] = torch.tensor(ids)
    loss = objective(model, batch, labels.to(device))
    loss.backward()
    return loss.item()


def _clip_groups(model: MultiExitTagger) -> list[list[torch.nn.Parameter]]:
    """Encoder + last exit are clipped together (as in an ordinary fine-tune), the lower exits apart."""
    trainable = lambda module: [p for p in module.parameters() if p.requires_grad]  # noqa: E731
    return [trainable(model.encoder) + trainable(model.exits[-1]), [p for e in model.exits[:-1] for p in trainable(e)]]


def _optimizer(
    model: MultiExitTagger, config: TrainConfig, extra: dict[str, torch.Tensor], extra_lr: float
) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm weights; casing vectors (new, from zero)
    at a scaled learning rate without decay; the objective's own parameters (`extra`) at
    `extra_lr` without decay."""
    decay, no_decay, casing = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (casing if is_casing_parameter(name) else no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if casing:
        groups.append({"params": casing, "weight_decay": 0.0, "lr": config.learning_rate * LEARNING_RATE_SCALE})
    if extra:
        groups.append({"params": list(extra.values()), "weight_decay": 0.0, "lr": extra_lr})
    return torch.optim.AdamW(groups, lr=config.learning_rate)
