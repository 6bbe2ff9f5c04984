"""`seqexit train`: joint multi-exit fine-tuning, then self-sampling fine-tuning (SSFT)."""

from __future__ import annotations

from pathlib import Path

import typer

from seqexit.backbones import DEFAULT_BACKBONE
from seqexit.model import TASKS
from seqexit.training_defaults import (DEFAULT_FULL_DEPTH_TOLERANCE, DEFAULT_MUTUAL, DEFAULT_RECIPE, DEFAULT_TEMPERATURE,
                                       EPOCHS, LEARNING_RATE, RECIPES, SSFT_EPOCHS, SSFT_LEARNING_RATE)

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly


@friendly
def train(
    ctx: typer.Context,
    train_file: Path = typer.Option(..., "--train", help="Labelled training file (CoNLL, CoNLL-U or JSONL)."),
    dev_file: Path = typer.Option(..., "--dev", help="Labelled dev file: picks the best epoch of each stage."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: joint/, ssft/ (each with model/, checkpoint/, "
                                "train_result.json) and model/, the final model."),
    task: str = typer.Option("ner", help=f"One of {', '.join(TASKS)}: ner/chunk read span tags, pos per-word tags."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Encoder folder, or 'minilm-l6' (the installed default)."),
    recipe: str = typer.Option(DEFAULT_RECIPE, help="First stage: " + "; ".join(f"{k}: {v}" for k, v in RECIPES.items())
                               + f". Default {DEFAULT_RECIPE}: + SSFT the best measured on CoNLL-2003 (88.88 test F1 "
                               "against 88.52 for two-stage + SSFT; on UD EWT two-stage + SSFT led by 0.03, within noise; "
                               "docs/training.md, 'Recipes')."),
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
    casing: bool | None = typer.Option(None, "--casing/--no-casing", show_default="auto", help="Learned casing features "
                                       "on the piece embeddings: give an uncased backbone back capitalisation (a new model "
                                       "only). Default auto: on for an uncased backbone (its tokenizer lowercases, as "
                                       "all-MiniLM-L6-v2's does: +2.05 dev F1 on CoNLL-2003), off for a cased one "
                                       "(docs/training.md, 'Casing features')."),
    epochs: int = typer.Option(EPOCHS, min=1, help="First stage epochs."),
    lr: float = typer.Option(LEARNING_RATE, "--lr", help="First stage peak learning rate (10% warm-up, linear decay)."),
    ssft_epochs: int = typer.Option(SSFT_EPOCHS, min=1, help="SSFT epochs."),
    ssft_lr: float = typer.Option(SSFT_LEARNING_RATE, help="SSFT peak learning rate."),
    max_threshold: float = typer.Option(0.5, help="SSFT: sampled TOKEE thresholds lie in [0, this]."),
    ssft_distill: float = typer.Option(0.0, min=0.0, max=1.0, help="SSFT: share of each exit's loss that is "
                                       "distillation from the full-depth output of the model SSFT starts from (0: gold "
                                       "tags only; 1: that output only, which holds full depth where it was)."),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(42),
    exit_grad_scale: float | None = typer.Option(
        None, help="Share of the lower exits' gradient that reaches the encoder (0..1). Default: 0 (joint), 1 (SSFT)."),
    exit_weights: str = typer.Option("layer", help="joint: 'layer' (l / L) or 'last' (ordinary fine-tune)."),
    format: str = typer.Option("auto", help="Input format: auto, conll, conllu, jsonl."),
    label_column: int = typer.Option(-1, help="Tag column of CoNLL files (default: last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: train on XPOS instead of UPOS."),
    on_bad_line: str = ON_BAD_LINE,
    threads: int = typer.Option(0, help="Torch CPU threads (0: torch's default)."),
) -> None:
    """Train a multi-exit tagger: the recipe's first stage, then SSFT (kept only if full depth
    on dev stays within --ssft-tolerance). Each stage resumes from its checkpoint in OUTPUT, and a
    finished stage is not run again. The recipe, settings and dev scores go into the model
    folder's training.json (shown by seqexit info). Defaults are the measured best: recipe
    distill (+ SSFT), and casing features on for an uncased backbone such as the default
    all-MiniLM-L6-v2 (off for a cased one).

    Examples:

      seqexit train --train eng.train --dev eng.testa -o runs/ner

      seqexit train --unlabelled news.txt --train eng.train --dev eng.testa -o runs/ner-distill

      seqexit train --recipe two-stage --no-casing --train eng.train --dev eng.testa -o runs/ner-two-stage

      seqexit train --train eng.train --dev eng.testa -o runs/ner-ssft --init runs/ner/joint/model
    """
    import torch

    from seqexit import training
    from seqexit.bundle import load_model, save_model
    from seqexit.data.formats import read_file
    from seqexit.evaluation import evaluate_exits
    from seqexit.training import SelfSamplingConfig, TrainConfig
    from seqexit.training.checkpoint import replace_dir

    if threads:
        torch.set_num_threads(threads)
    if task not in TASKS:  # it decides how the files are read
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    bad = bad_lines(on_bad_line)
    read = dict(format=format, span_tags=task != "pos", label_column=label_column, upos=not xpos, bad_lines=bad)
    train_set, dev_set = read_file(train_file, **read), read_file(dev_file, **read)
    extra = read_file(unlabelled, format=format, labelled=False, bad_lines=bad) if unlabelled is not None else None
    bad.finish()
    outcome = training.train(
        train_set, dev_set, output_dir=output, recipe=recipe,
        config=TrainConfig(epochs=epochs, learning_rate=lr, batch_size=batch_size, seed=seed,
                           exit_grad_scale=exit_grad_scale or 0.0, exit_weights=exit_weights),
        ssft=ssft, ssft_config=TrainConfig(epochs=ssft_epochs, learning_rate=ssft_lr, batch_size=batch_size, seed=seed),
        sampling=SelfSamplingConfig(max_threshold=max_threshold, distill_share=ssft_distill,
                                    exit_grad_scale=1.0 if exit_grad_scale is None else exit_grad_scale),
        ssft_tolerance=ssft_tolerance, init=load_model(init) if init is not None else None, unlabelled=extra,
        distill_temperature=distill_temperature, mutual=mutual, backbone=backbone, task=task, casing=casing,
        num_layers=layers, options={k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.params.items()},
    )
    replace_dir(lambda folder: save_model(outcome.model, folder), output / "model")  # the record travels with it
    made = outcome.record.get("recipe")
    made = f"recipe {made}" if made else ("adopted" if outcome.record.get("adopted") else "recipe unknown")
    typer.echo(f"model in {output / 'model'} ({made}{', SSFT' if outcome.ssft_kept else ''})")
    for score in evaluate_exits(outcome.model, dev_set):
        typer.echo(f"  exit {score.layer}: dev {score.metric} {score.score:.2f}")
