"""`seqexit calibrate`: measure early-exit policies on a dev file and store named presets
(accurate, balanced, fast and the one picked by --max-drop/--speedup) in the model folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer

from seqexit.data.formats import read_file
from seqexit.evaluation.calibrate import AGAINST_FULL_DEPTH, DEFAULT_MAX_DROP, DEFAULT_NAME, NAMED_DROPS, full_depth_references
from seqexit.evaluation.calibrate import calibrate as run_calibration
from seqexit.exits import Preset, check_preset_name
from seqexit.exits.criteria import CRITERIA

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly
from .json_output import print_json
from .learn_exits import read_word_lists
from .policy import QUANTIZE, RUNTIME, pick_quantize, pick_runtime_option


@friendly
def calibrate(
    model: Path = typer.Argument(..., help="Model folder: presets.json is written there."),
    data: Path = typer.Argument(..., help="Labelled dev file (CoNLL, CoNLL-U or JSONL) to measure on; with "
                                          "--against-full-depth any text, labels ignored (raw text too)."),
    max_drop: float | None = typer.Option(
        None, "--max-drop", help=f"Pick the fastest policy losing at most this many points against full depth "
        f"(default {DEFAULT_MAX_DROP} when --speedup is not given)."),
    speedup: float | None = typer.Option(None, "--speedup", help="Pick the most accurate policy with at least this FLOPs speed-up."),
    name: str = typer.Option(DEFAULT_NAME, "--name", help="Preset name for the pick (accurate, balanced, fast are built in)."),
    format: str = typer.Option("auto", help="Input format: auto, conll, conllu, jsonl."),
    label_column: int = typer.Option(-1, help="Tag column of CoNLL files (default: last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: score XPOS instead of UPOS."),
    on_bad_line: str = ON_BAD_LINE,
    batch_size: int = typer.Option(32),
    quantize: str = QUANTIZE,
    runtime: str = RUNTIME,
    criterion: str = typer.Option("entropy", "--criterion", help=f"Calibrate presets of this exit criterion ({', '.join(CRITERIA)}); "
                                  "other than entropy they are named accurate-CRITERION, balanced-CRITERION, ..."),
    names: str = typer.Option("auto", "--names", help="auto: accurate-CRITERION, ... for a criterion other than "
                              "entropy, accurate, ... for entropy; plain: accurate, balanced, fast whatever the criterion "
                              "(replacing those); suffixed: accurate-CRITERION, ... for entropy too."),
    against_full_depth: bool = typer.Option(
        False, "--against-full-depth", help="No gold labels: measure each policy's drop as its disagreement with the "
        "model's own full-depth labels on DATA (span F1 or accuracy against them); the presets record it."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Sweep TOKEE and SENTEE thresholds and windows on DEV (and cascades, when MODEL has a first
    stage: `seqexit cascade`), pick the policies that meet each bound, and store them as presets
    in MODEL/presets.json (other named presets there are kept).
    Also fits one softmax temperature per exit on DEV (MODEL/temperatures.json), which the
    "confidence" exit criterion uses.

    With --against-full-depth DATA needs no labels: the references are the model's own
    full-depth labels, so a drop is how far a policy strays from full depth (a model adopted
    from Hugging Face with no labelled data still gets presets).

    With --quantize int8 the policies run on the int8 engine and are stored as int8 presets
    (beside the float ones), their drops measured against the float model's full depth.

    Example: seqexit calibrate runs/conll/model data/dev.conll --max-drop 0.5 --name strict
    """
    from seqexit.bundle import ModelBundle, load_presets, save_presets, write_temperatures
    from seqexit.evaluation.temperature import fit_temperatures

    if max_drop is not None and speedup is not None:
        raise UsageError("give either --max-drop or --speedup, not both")
    if max_drop is not None and not max_drop >= 0:
        raise UsageError(f"--max-drop must be >= 0 (points of score), got {max_drop}")
    if speedup is not None and not speedup >= 0:
        raise UsageError(f"--speedup must be >= 0 (a FLOPs ratio), got {speedup}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    check_preset_name(name)
    if names not in ("auto", "plain", "suffixed"):
        raise UsageError(f"--names must be auto, plain or suffixed, not {names!r}")
    if name in NAMED_DROPS:
        raise UsageError(f"--name {name!r} is a built-in preset ({', '.join(NAMED_DROPS)}); choose another name")
    if speedup is None and max_drop is None:
        max_drop = DEFAULT_MAX_DROP
    quantized = pick_quantize(quantize, "cpu")
    runtime = pick_runtime_option(runtime, "cpu")
    if criterion not in CRITERIA:
        raise UsageError(f"--criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")

    bundle = ModelBundle.find(model)
    tagger = bundle.load()
    bundle.attach_first_stage(tagger, quantize=quantized, device="cpu", runtime=runtime)
    if against_full_depth:
        words = read_word_lists(data, format, 0, on_bad_line, quiet=json_output)
        sentences = full_depth_references(tagger, words, batch_size=batch_size)
        source = f"{data} ({AGAINST_FULL_DEPTH})"
    else:
        bad = bad_lines(on_bad_line)
        sentences = read_file(data, format, span_tags=tagger.config.scheme is not None, label_column=label_column,
                              upos=not xpos, bad_lines=bad)
        bad.finish()
        source = str(data)
    if not json_output:
        typer.echo(f"{len(sentences)} sentences, {sum(len(s) for s in sentences)} words from {source}")
    if criterion == "learned" and tagger.learned_exits is None:
        raise UsageError(f"--criterion learned needs exit heads: run `seqexit learn-exits {model} DATA` first")
    if criterion == "signals" and tagger.halting_signals is None:
        raise UsageError(f"--criterion signals needs its heads: run `seqexit learn-exits {model} DATA --criterion signals` first")
    fit = fit_temperatures(tagger, sentences, batch_size=batch_size)  # first: --criterion confidence uses them
    write_temperatures(model, fit.temperatures)
    tagger.exit_temperatures = fit.temperatures
    result = run_calibration(tagger, sentences, max_drop=max_drop, speedup=speedup, name=name, batch_size=batch_size,
                             data=source, progress=True, quantize=quantized, criterion=criterion,
                             runtime=runtime, suffix={"auto": None, "plain": False, "suffixed": True}[names])

    try:
        load_presets(model, quantize=quantized)
        merge = True  # read, update and write under save_presets' lock: a concurrent run's presets stay
    except ValueError as err:
        typer.secho(f"warning: replacing unreadable presets: {err}", fg=typer.colors.YELLOW, err=True)
        merge = False
    path = save_presets(model, result.presets, quantize=quantized, merge=merge)

    if json_output:
        print_json({
            "full_score": result.full_score,
            "quantize": quantized,
            "metric": result.metric,
            "chosen": result.chosen.to_dict(),
            "presets": {n: p.to_dict() for n, p in result.presets.items()},
            "rows": [{"policy": r.policy.to_dict(), "score": r.score, "flops_speedup": r.flops_speedup,
                      "mean_exit_layer": r.mean_exit_layer, "words_per_layer": r.words_per_layer} for r in result.rows],
            "presets_file": str(path),
            "temperatures": {"values": fit.temperatures, "nll_before": fit.nll_before, "nll_after": fit.nll_after,
                             "ece_before": fit.ece_before, "ece_after": fit.ece_after},
        })
        return
    typer.echo(f"full depth: {result.metric} {result.full_score:.2f}; {len(result.rows) - 1} early-exit policies measured")
    if quantized:
        typer.echo(f"{quantized} full depth: {result.metric} {result.rows[0].score:.2f} (drops below are against float full depth)")
    for line in preset_table(result.presets.values(), marked=result.chosen.name):
        typer.echo(line)
    chosen = result.chosen
    bound = f"speed-up >= x{speedup:g}" if speedup is not None else f"drop <= {_points(max_drop)}"
    if chosen.fallback and speedup is not None:
        typer.echo(f"chosen: {chosen.name} = full depth (no policy reached a FLOPs speed-up of x{speedup:g})")
    elif chosen.fallback:
        typer.echo(f"chosen: {chosen.name} = full depth (no early-exit policy within {_points(max_drop)} was faster)")
    else:
        typer.echo(f"chosen: {chosen.name} = {chosen.policy} ({bound})")
    typer.echo(f"presets written to {path}")
    typer.echo("exit temperatures (for --criterion confidence): " + " ".join(f"{t:.2f}" for t in fit.temperatures)
               + "; ECE % before -> after: " + " ".join(f"{b:.2f}->{a:.2f}" for b, a in zip(fit.ece_before, fit.ece_after)))


def preset_table(presets: Iterable[Preset], marked: str | None = None) -> list[str]:
    """Aligned lines: name, policy, score, drop against full depth, FLOPs speed-up, mean exit
    layer; `marked` gets a star."""
    presets = list(presets)
    if not presets:
        return []
    metric = presets[0].metric
    rows = [("preset", "policy", metric, "drop", "speed-up", "mean layer")]
    for p in presets:
        rows.append((
            p.name + (" *" if p.name == marked else ""), str(p.policy) + (" (fallback)" if p.fallback else ""),
            f"{p.score:.2f}", f"{p.drop:+.2f}", f"x{p.flops_speedup:.2f}", f"{p.mean_exit_layer:.2f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def _points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")
