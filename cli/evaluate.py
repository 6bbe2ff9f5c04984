"""`seqexit evaluate`: score a model on a labelled file under one policy, or sweep a grid of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from tqdm.auto import tqdm

from seqexit.data.formats import read_file
from seqexit.exits import ExitPolicy

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly
from .json_output import print_json
from .policy import (CRITERION, EXIT_LAYER, MIN_LAYER, MODE, PATIENCE, PRESET, QUANTIZE, RUNTIME, THRESHOLD, WINDOW,
                     THEN, build_policy, pick_device, pick_quantize, pick_runtime_option)

if TYPE_CHECKING:
    from seqexit.evaluation import PolicyScore

SWEEP_MODES = ("tokee", "sentee")


def score_record(result: PolicyScore) -> dict:
    """The JSON object of one evaluated policy (a stable contract)."""
    return {
        "metric": result.metric,
        "score": result.score,
        "per_type": {label: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
                     for label, s in result.spans.per_type.items()} if result.spans else {},
        "sentences": result.sentences,
        "words": result.words,
        "seconds": result.seconds,
        "words_per_second": result.words_per_second,
        "flops": result.flops,
        "flops_full": result.flops_full,
        "flops_speedup": result.flops_speedup,
        "mean_exit_layer": result.mean_exit_layer,
        "exit_layer_histogram": result.words_per_layer,
        "first_stage_words": result.words - sum(result.words_per_layer),
        "policy": result.policy.to_dict(),
    }


def _numbers(text: str, kind, option: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated numbers, not {text!r}") from None


@friendly
def evaluate(
    model: str = typer.Argument(..., help="Model folder or a shipped model's name."),
    data: Path = typer.Argument(..., help="Labelled file (CoNLL, CoNLL-U or JSONL)."),
    format: str = typer.Option("auto", help="Input format: auto, conll, conllu, jsonl."),
    label_column: int = typer.Option(-1, help="Tag column of CoNLL files (default: last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: score XPOS instead of UPOS."),
    on_bad_line: str = ON_BAD_LINE,
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    preset: str | None = PRESET,
    quantize: str = QUANTIZE,
    runtime: str = RUNTIME,
    mode: str = MODE,
    threshold: str = THRESHOLD,
    window: int = WINDOW,
    min_layer: int = MIN_LAYER,
    exit_layer: int | None = EXIT_LAYER,
    criterion: str = CRITERION,
    patience: int | None = PATIENCE,
    then: str | None = THEN,
    per_exit: bool = typer.Option(True, help="Full depth: also score every exit (one more pass)."),
    sweep: bool = typer.Option(False, "--sweep", help="Score a grid of policies and print the trade-off table."),
    sweep_modes: str = typer.Option("tokee,sentee", help="--sweep: modes, comma-separated."),
    thresholds: str = typer.Option("0.02,0.05,0.1,0.2,0.3,0.4,0.5", help="--sweep: thresholds, comma-separated."),
    windows: str = typer.Option("0,1,2", help="--sweep: window half-widths, comma-separated."),
    plot: Path | None = typer.Option(None, help="--sweep: draw score against FLOPs speed-up per mode into this PNG."),
    json_output: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Score MODEL on DATA: span precision/recall/F1 per type (or accuracy), words/s, FLOPs
    speed-up and the exit-layer histogram of the chosen policy.

    Examples:

      seqexit evaluate MODEL ../shared/data/conll2003/eng.testb --preset balanced

      seqexit evaluate MODEL dev.conll --sweep --plot tradeoff.png --json > sweep.json

      seqexit evaluate en-ner ../shared/data/conll2003/eng.testb --preset fast --quantize int8
    """
    from seqexit.bundle import ModelBundle
    from seqexit.evaluation import evaluate_exits, evaluate_policy
    from seqexit.evaluation.calibrate import calibration_grid

    if plot is not None and not sweep:
        raise UsageError("--plot draws a sweep: add --sweep")
    quantized = pick_quantize(quantize, device)
    runtime = pick_runtime_option(runtime, device)
    bundle = ModelBundle.find(model)
    model_dir = bundle.folder
    policy = build_policy(mode, threshold, window, min_layer, exit_layer, preset=preset, model_dir=model_dir,
                          quantize=quantized, criterion=criterion, patience=patience, then=then)
    tagger = bundle.open(policy=policy, quantize=quantized, device=pick_device(device), runtime=runtime).runner
    bad = bad_lines(on_bad_line)
    sentences = read_file(data, format, span_tags=tagger.config.scheme is not None, label_column=label_column, upos=not xpos,
                          bad_lines=bad)
    bad.finish()
    if sweep:
        modes = [m.strip() for m in sweep_modes.split(",") if m.strip()]
        if unknown := [m for m in modes if m not in SWEEP_MODES]:
            raise UsageError(f"--sweep-modes: {', '.join(unknown)} not in {', '.join(SWEEP_MODES)}")
        grid = [ExitPolicy()] + calibration_grid(tagger.num_layers, thresholds=_numbers(thresholds, float, "--thresholds"),
                                                 windows=_numbers(windows, int, "--windows"), modes=("static", *modes))
        rows = [evaluate_policy(tagger, sentences, p, batch_size=batch_size)
                for p in tqdm(grid, desc="sweep", unit=" policies", disable=None, leave=False)]
        if plot is not None:
            from seqexit.evaluation.plot import plot_tradeoff

            plot_tradeoff(rows, plot, title=f"{model_dir.name} on {data.name}")
        if json_output:
            print_json({"rows": [score_record(r) for r in rows]})
            return
        _print_sweep(rows)
        if plot is not None:
            typer.echo(f"plot written to {plot}")
        return
    result = evaluate_policy(tagger, sentences, policy, batch_size=batch_size)
    exits = evaluate_exits(tagger, sentences, batch_size=batch_size, calibration=True) if per_exit and policy.mode == "full" else []
    if json_output:
        record = score_record(result)
        if exits:
            record["exits"] = [{"layer": e.layer, "score": e.score, "ece": e.ece, "ece_with_temperature": e.ece_with_temperature}
                               for e in exits]
        print_json(record)
        return
    _print_result(result, exits)


def _print_result(result: PolicyScore, exits) -> None:
    typer.echo(f"{result.sentences} sentences, {result.words} words, {result.policy}")
    for score in exits:
        scaled = f" -> {score.ece_with_temperature:.2f} with its temperature" if score.ece_with_temperature is not None else ""
        typer.echo(f"exit {score.layer}: {score.metric} {score.score:.2f}  ECE {score.ece:.2f}%{scaled}")
    typer.echo(f"{result.metric} {result.score:.2f}  FLOPs speed-up x{result.flops_speedup:.2f}  "
               f"mean exit layer {result.mean_exit_layer:.2f}  {result.words_per_second:,.0f} words/s ({result.seconds:.1f} s)")
    if result.spans is not None:
        typer.echo("per type:")
        for label, s in result.spans.per_type.items():
            typer.echo(f"  {label:<8} P {s.precision:6.2f}  R {s.recall:6.2f}  F1 {s.f1:6.2f}  ({s.support})")
    typer.echo("words exiting at layers 1..L: " + " ".join(str(n) for n in result.words_per_layer))
    if first := result.words - sum(result.words_per_layer):
        typer.echo(f"words labelled by the cascade's first stage: {first}")


def _print_sweep(rows: list[PolicyScore]) -> None:
    full = rows[0].score
    typer.echo(f"{'policy':<40} {rows[0].metric:>8} {'drop':>6} {'FLOPs x':>8} {'mean layer':>10} {'words/s':>9}")
    for r in rows:
        typer.echo(f"{str(r.policy):<40} {r.score:8.2f} {full - r.score:6.2f} {r.flops_speedup:8.2f} "
                   f"{r.mean_exit_layer:10.2f} {r.words_per_second:9,.0f}")
