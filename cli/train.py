"""`seqexit train`: joint multi-exit fine-tuning, then self-sampling fine-tuning (SSFT)."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from seqexit.backbones import DEFAULT_BACKBONE
from seqexit.data import label_set
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.model import TASKS, MultiExitTagger
from seqexit.training import (
    RECIPES, SelfSamplingConfig, TrainConfig, train_distill, train_joint, train_learned_weights,
    train_self_sampling_guarded, train_two_stage,
)
from seqexit.training.checkpoint import replace_dir
from seqexit.training.distill import DEFAULT_TEMPERATURE
from seqexit.training.learned_weights import DEFAULT_MUTUAL
from seqexit.training.record import stage_record
from seqexit.training.self_sampling import DEFAULT_FULL_DEPTH_TOLERANCE

from .errors import UsageError, friendly
# (epochs, peak learning rate) when not given
FIRST_STAGE_DEFAULTS = (4, 1e-4)
SSFT_DEFAULTS = (2, 2e-5)


@friendly
def train(
    ctx: typer.Context,
    train_file: Path = typer.Option(..., "--train", help="Labelled training file (CoNLL, CoNLL-U or JSONL)."),
    dev_file: Path = typer.Option(..., "--dev", help="Labelled dev file: picks the best epoch of each stage."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: joint/, ssft/ (each with model/, checkpoint/, "
                                "train_result.json) and model/, the final model."),
    task: str = typer.Option("ner", help=f"One of {', '.join(TASKS)}: ner/chunk read span tags, pos per-word tags."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Encoder folder, or 'minilm-l6' (the installed default)."),
    recipe: str = typer.Option("two-stage", help="First stage: " + "; ".join(f"{k}: {v}" for k, v in RECIPES.items())
                               + " (README, 'Training recipes')."),
    init: Path | None = typer.Option(None, help="Skip the first stage: start SSFT from this trained model folder."),
    ssft: bool = typer.Option(True, help="Run self-sampling fine-tuning after the first stage."),
    ssft_tolerance: float = typer.Option(DEFAULT_FULL_DEPTH_TOLERANCE, min=0.0, help="Keep the SSFT model only if its "
                                         "full-depth dev score lost at most this many points (0: keep the better)."),
    unlabelled: Path | None = typer.Option(None, help="distill: unlabelled sentences (raw .txt, or a CoNLL/CoNLL-U/JSONL "
                                           "file whose tags are ignored; read with --format) the lower exits also learn from."),
    distill_temperature: float = typer.Option(DEFAULT_TEMPERATURE, help="distill: softmax temperature of the targets."),
    mutual: float = typer.Option(DEFAULT_MUTUAL, min=0.0, help="learned-weights: weight of the mutual distillation."),
    layers: int | None = typer.Option(None, "--layers", min=1, help="Keep only the backbone's first K layers (a smaller "
                                      "static model; a new model only)."),
    casing: bool = typer.Option(False, help="Add learned casing features to the piece embeddings: gives an uncased "
                                "backbone back capitalisation (a new model only; see README, 'Casing features')."),
    epochs: int = typer.Option(FIRST_STAGE_DEFAULTS[0], min=1, help="First stage epochs."),
    lr: float = typer.Option(FIRST_STAGE_DEFAULTS[1], "--lr", help="First stage peak learning rate (10% warm-up, linear decay)."),
    ssft_epochs: int = typer.Option(SSFT_DEFAULTS[0], min=1, help="SSFT epochs."),
    ssft_lr: float = typer.Option(SSFT_DEFAULTS[1], help="SSFT peak learning rate."),
    max_threshold: float = typer.Option(0.5, help="SSFT: sampled TOKEE thresholds lie in [0, this]."),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(42),
    exit_grad_scale: float | None = typer.Option(
        None, help="Share of the lower exits' gradient that reaches the encoder (0..1). Default: 0 (joint), 1 (SSFT)."),
    exit_weights: str = typer.Option("layer", help="joint: 'layer' (l / L) or 'last' (ordinary fine-tune)."),
    format: str = typer.Option("auto", help="Input format: auto, conll, conllu, jsonl."),
    label_column: int = typer.Option(-1, help="Tag column of CoNLL files (default: last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: train on XPOS instead of UPOS."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: torch's default)."),
) -> None:
    """Train a multi-exit tagger: the recipe's first stage, then SSFT (kept only if full depth
    on dev stays within --ssft-tolerance). Each stage resumes from its checkpoint in OUTPUT, and a
    finished stage is not run again. The recipe, settings and dev scores go into the model
    folder's training.json (shown by seqexit info).

    Examples:

      seqexit train --train eng.train --dev eng.testa -o runs/ner

      seqexit train --recipe distill --unlabelled news.txt --train eng.train --dev eng.testa -o runs/ner-distill

      seqexit train --train eng.train --dev eng.testa -o runs/ner-ssft --init runs/ner/joint/model
    """
    if threads:
        torch.set_num_threads(threads)
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if unlabelled is not None and recipe != "distill":
        raise UsageError("--unlabelled feeds self-distillation: it needs --recipe distill")
    if unlabelled is not None and init is not None:
        raise UsageError("--unlabelled feeds the first stage, which --init skips")
    if distill_temperature <= 0:
        raise UsageError(f"--distill-temperature must be > 0, not {distill_temperature}")
    if init is not None and (casing or layers is not None):
        raise UsageError("--casing and --layers shape a new model; the --init model keeps its own")
    if init is not None and not ssft:
        raise UsageError("--init starts SSFT from a trained model: it cannot go with --no-ssft")
    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    span_tags = task != "pos"
    read = dict(format=format, span_tags=span_tags, label_column=label_column, upos=not xpos)
    train_set, dev_set = read_file(train_file, **read), read_file(dev_file, **read)
    if span_tags and not any(t != "O" for s in train_set for t in s.tags):
        raise UsageError(f"{train_file}: no span tags found for task {task!r} (is it a POS file? use --task pos)")
    extra = read_file(unlabelled, format=format, labelled=False) if unlabelled is not None else []
    if init is not None:
        model = MultiExitTagger.load(init)
    else:
        labels = label_set(train_set + dev_set, span_scheme=span_tags)
        model = MultiExitTagger.from_backbone(backbone, labels, task=task, scheme="iob2" if span_tags else None,
                                             casing=casing, num_layers=layers)
    typer.echo(f"{len(train_set)} training sentences, {len(model.labels)} labels, {model.num_layers} layers", err=True)
    config = TrainConfig(epochs=epochs, learning_rate=lr, batch_size=batch_size, seed=seed,
                         exit_grad_scale=exit_grad_scale or 0.0, exit_weights=exit_weights)
    record = dict(model.training_record or {}) if init is not None else {"recipe": recipe, "stages": []}
    record.setdefault("stages", [])
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.params.items()}
    record["train_options"] = [*record.get("train_options", []), options]  # one entry per `seqexit train` run
    if init is None:
        typer.echo(f"stage 1: {recipe}, {epochs} epochs at lr {lr:g}", err=True)
        record["stages"] += _first_stage(model, recipe, train_set, dev_set, config, output / "joint", extra,
                                         distill_temperature, mutual)
        if extra:
            record["unlabelled"] = {"file": str(unlabelled), "sentences": len(extra)}
    if ssft:
        typer.echo(f"stage 2: SSFT, {ssft_epochs} epochs at lr {ssft_lr:g}", err=True)
        sampling = SelfSamplingConfig(max_threshold=max_threshold, exit_grad_scale=1.0 if exit_grad_scale is None else exit_grad_scale)
        ssft_config = TrainConfig(epochs=ssft_epochs, learning_rate=ssft_lr, batch_size=batch_size, seed=seed)
        outcome = train_self_sampling_guarded(model, train_set, dev_set, ssft_config, output / "ssft",
                                              sampling=sampling, tolerance=ssft_tolerance)
        record["stages"].append(stage_record("SSFT", outcome.result))
        record["ssft_guard"] = outcome.to_dict()
        typer.echo(f"SSFT: full depth on dev {outcome.full_depth_before:.2f} before, {outcome.full_depth_after:.2f} after: "
                   f"{'kept' if outcome.kept == 'ssft' else 'discarded (it cost more than the tolerance)'}", err=True)
    model.training_record = record  # `model` holds the weights kept: the guard restored them if SSFT was discarded
    replace_dir(lambda folder: model.save(folder), output / "model")
    typer.echo(f"model in {output / 'model'} (recipe {record.get('recipe', '?')}{', SSFT' if ssft and record['ssft_guard']['kept'] == 'ssft' else ''})")
    for score in evaluate_exits(model, dev_set):
        typer.echo(f"  exit {score.layer}: dev {score.metric} {score.score:.2f}")


def _first_stage(model, recipe, train_set, dev_set, config, output, unlabelled, temperature, mutual) -> list[dict]:
    """Run the recipe's first stage(s) into `output`; their records."""
    if recipe == "joint":
        return [stage_record("joint", train_joint(model, train_set, dev_set, config, output))]
    if recipe == "learned-weights":
        return [stage_record("learned weights", train_learned_weights(model, train_set, dev_set, config, output, mutual=mutual))]
    if recipe == "distill":
        first, second = train_distill(model, train_set, dev_set, config, output, unlabelled=unlabelled, temperature=temperature)
        return [stage_record("ordinary fine-tune", first), stage_record("self-distillation", second)]
    first, second = train_two_stage(model, train_set, dev_set, config, output)
    return [stage_record("ordinary fine-tune", first), stage_record("lower exits", second)]
