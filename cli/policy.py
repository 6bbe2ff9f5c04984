"""Command-line options that pick a model and build its `ExitPolicy`, shared by `tag` and `evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer

from seqexit.exits import MODES, ExitPolicy
from seqexit.exits.criteria import COUNTING, CRITERIA

from .errors import UsageError

MODE = typer.Option("full", "--mode", help=f"Early exit: {', '.join(MODES)}.")
THRESHOLD = typer.Option(
    "0.0", "--threshold", help="tokee/sentee: halt below this normalised entropy (0-1); one value or one per layer, comma-separated."
)
WINDOW = typer.Option(2, "--window", help="tokee/sentee: half-width k of the uncertainty window (words i-k..i+k).")
MIN_LAYER = typer.Option(1, "--min-layer", help="tokee/sentee: no word halts before this layer.")
EXIT_LAYER = typer.Option(None, "--exit-layer", help="Static exit: stop every word at this layer (implies --mode static).")
PRESET = typer.Option(None, "--preset", help="A policy stored by `seqexit calibrate` (accurate, balanced, fast...); "
                      "overrides --mode/--threshold/--window.")
CRITERION = typer.Option("entropy", "--criterion", help=f"tokee/sentee: what makes a word certain: {', '.join(CRITERIA)} "
                         "(see the README's Exit criteria).")
PATIENCE = typer.Option(None, "--patience", help=f"--criterion {' or '.join(COUNTING)}: exits in a row (N >= 1).")
QUANTIZE = typer.Option("none", "--quantize", help="none, or int8: the encoder on int8 kernels (CPU only); "
                        "--preset then names an int8 preset.")


def build_policy(
    mode: str, threshold: str, window: int, min_layer: int, exit_layer: int | None,
    *, preset: str | None = None, model_dir: Path | None = None, quantize: str | None = None,
    criterion: str = "entropy", patience: int | None = None,
) -> ExitPolicy:
    """An `ExitPolicy` from the option values (or a stored preset, of the int8 engine when
    `quantize` is "int8"), with clear usage errors."""
    if preset is not None:
        if model_dir is None:
            raise UsageError("--preset needs a model folder")
        from seqexit.exits.presets import resolve_preset

        return resolve_preset(model_dir, preset, quantize=quantize)
    if criterion not in CRITERIA:
        raise UsageError(f"--criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    if patience is not None and criterion not in COUNTING:
        raise UsageError(f"--patience is for --criterion {' or '.join(COUNTING)}, not {criterion}")
    if criterion in COUNTING and (patience is None or patience < 1):
        raise UsageError(f"--criterion {criterion} needs --patience N with N >= 1 (exits in a row), got {patience}")
    if exit_layer is not None:
        return ExitPolicy.static(exit_layer)
    try:
        values = [float(v) for v in threshold.split(",")]
    except ValueError:
        raise UsageError(f"--threshold must be a number or comma-separated numbers, not {threshold!r}") from None
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise UsageError(f"--threshold {threshold} is out of range: thresholds are normalised entropies in [0, 1]")
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    return ExitPolicy(mode=mode, threshold=values[0] if len(values) == 1 else tuple(values), window=window, min_layer=min_layer,
                      criterion=criterion, patience=patience)


def pick_quantize(quantize: str, device: str) -> str | None:
    """The --quantize option checked against the choices and the device (None for none)."""
    from seqexit.quantize import check_quantize

    try:
        value = check_quantize(quantize)
    except ValueError as err:
        raise UsageError(f"--quantize: {err}") from None
    if value and device == "auto":
        device = pick_device(device)
    if value and device != "cpu":
        raise UsageError(f"--quantize {value} runs on the CPU only (int8 dynamic kernels): leave --device at cpu, not {device!r}")
    return value


def pick_device(device: str) -> str:
    """The --device option checked by `seqexit.model.resolve_device` (a usage error if bad)."""
    from seqexit.model import resolve_device

    try:
        return resolve_device(device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
