"""`seqexit train`: joint multi-exit fine-tuning, then self-sampling fine-tuning (SSFT)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import typer

from seqexit.backbones import DEFAULT_BACKBONE
from seqexit.data import label_set
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.model import TASKS, MultiExitTagger
from seqexit.training import SelfSamplingConfig, TrainConfig, train_joint, train_self_sampling, train_two_stage
from seqexit.training.checkpoint import replace_dir

from .errors import UsageError, friendly

RECIPES = ("two-stage", "joint")
# (epochs, peak learning rate) when not given
FIRST_STAGE_DEFAULTS = (4, 1e-4)
SSFT_DEFAULTS = (2, 2e-5)


@friendly
def train(
    train_file: Path = typer.Option(..., "--train", help="Labelled training file (CoNLL, CoNLL-U or JSONL)."),
    dev_file: Path = typer.Option(..., "--dev", help="Labelled dev file: picks the best epoch of each stage."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: joint/, ssft/ (each with model/, checkpoint/, "
                                "train_result.json) and model/, the final model."),
    task: str = typer.Option("ner", help=f"One of {', '.join(TASKS)}: ner/chunk read span tags, pos per-word tags."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Encoder folder, or 'minilm-l6' (the installed default)."),
    recipe: str = typer.Option("two-stage", help="First stage. two-stage: ordinary fine-tune, then the lower exits on "
                               "it (full depth = ordinary fine-tune); joint: all exits in one pass."),
    init: Path | None = typer.Option(None, help="Skip the first stage: start SSFT from this trained model folder."),
    ssft: bool = typer.Option(True, help="Run self-sampling fine-tuning after the first stage."),
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
    """Train a multi-exit tagger: the first stage (two-stage or joint), then SSFT. Each stage
    resumes from its checkpoint in OUTPUT, and a finished stage is not run again.

    Examples:

      seqexit train --train eng.train --dev eng.testa -o runs/ner

      seqexit train --train eng.train --dev eng.testa -o runs/ner-ssft --init runs/ner/joint/model
    """
    if threads:
        torch.set_num_threads(threads)
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
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
    if init is not None:
        model = MultiExitTagger.load(init)
    else:
        labels = label_set(train_set + dev_set, span_scheme=span_tags)
        model = MultiExitTagger.from_backbone(backbone, labels, task=task, scheme="iob2" if span_tags else None,
                                             casing=casing, num_layers=layers)
    typer.echo(f"{len(train_set)} training sentences, {len(model.labels)} labels, {model.num_layers} layers", err=True)
    config = TrainConfig(epochs=epochs, learning_rate=lr, batch_size=batch_size, seed=seed,
                         exit_grad_scale=exit_grad_scale or 0.0, exit_weights=exit_weights)
    last = None
    if init is None:
        typer.echo(f"stage 1: {recipe}, {epochs} epochs at lr {lr:g}", err=True)
        if recipe == "joint":
            last = train_joint(model, train_set, dev_set, config, output / "joint")
        else:
            last = train_two_stage(model, train_set, dev_set, config, output / "joint")[1]
    if ssft:
        typer.echo(f"stage 2: SSFT, {ssft_epochs} epochs at lr {ssft_lr:g}", err=True)
        sampling = SelfSamplingConfig(max_threshold=max_threshold, exit_grad_scale=1.0 if exit_grad_scale is None else exit_grad_scale)
        ssft_config = TrainConfig(epochs=ssft_epochs, learning_rate=ssft_lr, batch_size=batch_size, seed=seed)
        last = train_self_sampling(model, train_set, dev_set, ssft_config, output / "ssft", sampling=sampling)
    replace_dir(lambda folder: shutil.copytree(last.model_dir, folder, dirs_exist_ok=True), output / "model")
    typer.echo(f"model in {output / 'model'}")
    for score in evaluate_exits(model, dev_set):
        typer.echo(f"  exit {score.layer}: dev {score.metric} {score.score:.2f}")
