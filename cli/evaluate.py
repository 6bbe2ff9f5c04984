"""`seqexit evaluate`: score every exit of a model on a labelled file, or one early-exit policy."""

from __future__ import annotations

from pathlib import Path

import typer

from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits, evaluate_policy
from seqexit.model import MultiExitTagger

from .errors import friendly
from .policy import EXIT_LAYER, MIN_LAYER, MODE, THRESHOLD, WINDOW, build_policy


@friendly
def evaluate(
    model: Path = typer.Argument(..., help="Model folder."),
    data: Path = typer.Argument(..., help="Labelled file (CoNLL, CoNLL-U or JSONL)."),
    format: str = typer.Option("auto"),
    label_column: int = typer.Option(-1),
    xpos: bool = typer.Option(False, help="CoNLL-U: score XPOS instead of UPOS."),
    batch_size: int = typer.Option(64),
    mode: str = MODE,
    threshold: str = THRESHOLD,
    window: int = WINDOW,
    min_layer: int = MIN_LAYER,
    exit_layer: int | None = EXIT_LAYER,
) -> None:
    """Print each exit's score (span F1 or accuracy) and the last exit's per-type scores; with
    --mode tokee/sentee/static, the score, FLOPs speed-up and exit layers of that policy."""
    policy = build_policy(mode, threshold, window, min_layer, exit_layer)
    tagger = MultiExitTagger.load(model)
    sentences = read_file(data, format, span_tags=tagger.config.scheme is not None, label_column=label_column, upos=not xpos)
    if policy.mode != "full":
        result = evaluate_policy(tagger, sentences, policy, batch_size=batch_size)
        typer.echo(f"{len(sentences)} sentences, {sum(len(s) for s in sentences)} words, {policy}")
        typer.echo(f"{result.metric} {result.score:.2f}  FLOPs speed-up x{result.flops_speedup:.2f}  "
                   f"mean exit layer {result.mean_exit_layer:.2f}  {result.seconds:.1f} s")
        typer.echo("words exiting at layers 1..L: " + " ".join(str(n) for n in result.words_per_layer))
        return
    scores = evaluate_exits(tagger, sentences, batch_size=batch_size)
    typer.echo(f"{len(sentences)} sentences, {sum(len(s) for s in sentences)} words")
    for score in scores:
        typer.echo(f"exit {score.layer}: {score.metric} {score.score:.2f}")
    last = scores[-1].spans
    if last is not None:
        typer.echo("last exit per type:")
        for label, s in last.per_type.items():
            typer.echo(f"  {label:<8} P {s.precision:6.2f}  R {s.recall:6.2f}  F1 {s.f1:6.2f}  ({s.support})")
