"""`seqexit train`: joint multi-exit fine-tuning from labelled files."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from seqexit.backbones import DEFAULT_BACKBONE, resolve_backbone
from seqexit.data import label_set
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.model import TASKS, MultiExitTagger
from seqexit.training import SelfSamplingConfig, TrainConfig, train_joint, train_self_sampling, train_two_stage

RECIPES = ("two-stage", "joint", "ssft")
# (epochs, learning rate) when not given: fine-tuning recipes vs. SSFT on a trained model
RECIPE_DEFAULTS = {"two-stage": (4, 1e-4), "joint": (4, 1e-4), "ssft": (2, 2e-5)}

from .errors import friendly


@friendly
def train(
    train_file: Path = typer.Option(..., "--train", help="Labelled training file (CoNLL, CoNLL-U or JSONL)."),
    dev_file: Path = typer.Option(..., "--dev", help="Labelled dev file: picks the best epoch."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: model/, checkpoint/, train_result.json."),
    task: str = typer.Option("ner", help=f"One of {', '.join(TASKS)}: ner/chunk read span tags, pos per-word tags."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Encoder folder, or 'minilm-l6' (the installed default)."),
    recipe: str = typer.Option("two-stage", help="two-stage: ordinary fine-tune, then the lower exits on it "
                               "(full depth = ordinary fine-tune); joint: all exits in one pass; ssft: "
                               "self-sampling fine-tuning of the model given by --init."),
    init: Path | None = typer.Option(None, help="ssft: the trained model folder to start from."),
    max_threshold: float = typer.Option(0.5, help="ssft: sampled TOKEE thresholds lie in [0, this]."),
    epochs: int | None = typer.Option(None, help="Default: 4 (two-stage, joint), 2 (ssft)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate, 10% warm-up then linear decay. "
                                    "Default: 1e-4 (two-stage, joint), 2e-5 (ssft)."),
    batch_size: int = typer.Option(32),
    seed: int = typer.Option(42),
    exit_grad_scale: float | None = typer.Option(
        None, help="joint, ssft: share of the lower exits' gradient that reaches the encoder (0..1). Default: 0 (joint), 1 (ssft)."),
    exit_weights: str = typer.Option("layer", help="joint: 'layer' (l / L) or 'last' (ordinary fine-tune)."),
    format: str = typer.Option("auto", help="Input format: auto, conll, conllu, jsonl."),
    label_column: int = typer.Option(-1, help="Tag column of CoNLL files (default: last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: train on XPOS instead of UPOS."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: torch's default)."),
) -> None:
    """Train a multi-exit tagger (resumes from OUTPUT/checkpoint if present)."""
    if threads:
        torch.set_num_threads(threads)
    span_tags = task != "pos"
    read = dict(format=format, span_tags=span_tags, label_column=label_column, upos=not xpos)
    train_set, dev_set = read_file(train_file, **read), read_file(dev_file, **read)
    if span_tags and not any(t != "O" for s in train_set for t in s.tags):
        raise ValueError(f"{train_file}: no span tags found for task {task!r} (is it a POS file? use --task pos)")
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if (recipe == "ssft") != (init is not None):
        raise ValueError("--init (a trained model folder) goes with --recipe ssft, and only with it")
    if init is not None:
        model = MultiExitTagger.load(init)
    else:
        labels = label_set(train_set + dev_set, span_scheme=span_tags)
        model = MultiExitTagger.from_backbone(resolve_backbone(backbone), labels, task=task, scheme="iob2" if span_tags else None)
    default_epochs, default_lr = RECIPE_DEFAULTS[recipe]
    config = TrainConfig(epochs=epochs or default_epochs, learning_rate=lr or default_lr, batch_size=batch_size, seed=seed,
                         exit_grad_scale=exit_grad_scale or 0.0, exit_weights=exit_weights)
    typer.echo(f"{len(train_set)} training sentences, {len(model.labels)} labels, {model.num_layers} layers")
    if recipe == "ssft":
        result = train_self_sampling(model, train_set, dev_set, config, output,
                                     sampling=SelfSamplingConfig(max_threshold=max_threshold,
                                                                 exit_grad_scale=1.0 if exit_grad_scale is None else exit_grad_scale))
    elif recipe == "joint":
        result = train_joint(model, train_set, dev_set, config, output)
    else:
        _, result = train_two_stage(model, train_set, dev_set, config, output)
    typer.echo(f"model in {result.model_dir}")
    for score in evaluate_exits(model, dev_set):
        typer.echo(f"  exit {score.layer}: dev {score.metric} {score.score:.2f}")
