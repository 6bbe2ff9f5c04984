"""Command-line options that pick a model and build its `ExitPolicy`, shared by `tag` and `evaluate`.

The options are declared here; their defaults, checks and messages are `ExitPolicy`'s
(`ExitPolicy.from_options`), with the settings named as options."""

from __future__ import annotations

from pathlib import Path

import typer

from seqexit.exits import MODES, ExitPolicy
from seqexit.exits.criteria import COUNTING, CRITERIA
from seqexit.exits.policy import PolicyError

from .errors import UsageError

DEFAULT = ExitPolicy()
OPTION_NAMES = {"mode": "--mode", "threshold": "--threshold", "window": "--window", "min_layer": "--min-layer",
                "static_layer": "--exit-layer", "criterion": "--criterion", "patience": "--patience", "then": "--then"}

MODE = typer.Option(DEFAULT.mode, "--mode", help=f"Early exit: {', '.join(MODES)} (cascade: the model's paired first stage "
                    "tags first, see `seqexit cascade`).")
THRESHOLD = typer.Option(
    str(DEFAULT.threshold), "--threshold",
    help="tokee/sentee: one value, or one per layer comma-separated. --criterion entropy: halt below this normalised "
         "entropy (0 never halts, above 1 always); confidence, learned, signals: halt above this probability (0-1); vote: above "
         "this share of the vote (0-1); patience, rising: unused.",
)
WINDOW = typer.Option(DEFAULT.window, "--window", help="tokee/sentee: half-width k of the uncertainty window (words i-k..i+k).")
MIN_LAYER = typer.Option(DEFAULT.min_layer, "--min-layer", help="tokee/sentee: no word halts before this layer.")
EXIT_LAYER = typer.Option(None, "--exit-layer", help="Static exit: stop every word at this layer (implies --mode static).")
PRESET = typer.Option(None, "--preset", help="A policy stored by `seqexit calibrate` (accurate, balanced, fast...); "
                      "overrides --mode/--threshold/--window.")
CRITERION = typer.Option(DEFAULT.criterion, "--criterion", help=f"tokee/sentee: what makes a word certain: {', '.join(CRITERIA)} "
                         "(see docs/concepts.md, 'Exit criteria').")
THEN = typer.Option(None, "--then", help="--mode cascade: a preset of this model to run on the sentences the first "
                    "stage sends on (default: full depth).")
PATIENCE = typer.Option(None, "--patience", help=f"--criterion {' or '.join(COUNTING)}: exits in a row (N >= 1).")
QUANTIZE = typer.Option("none", "--quantize", help="none, or int8: the encoder on int8 kernels (CPU only); "
                        "--preset then names an int8 preset.")
RUNTIME = typer.Option("auto", "--runtime", help="What runs the encoder's layers: auto (ONNX Runtime where it measures "
                       "clearly faster on this CPU, else torch), torch, or onnx (ONNX Runtime, CPU; fastest at batch 1 "
                       "here). Same fp32 labels either way; see docs/runtime.md.")


def build_policy(
    mode: str, threshold: str, window: int, min_layer: int, exit_layer: int | None,
    *, preset: str | None = None, model_dir: Path | None = None, quantize: str | None = None,
    criterion: str = "entropy", patience: int | None = None, then: str | None = None,
) -> ExitPolicy:
    """An `ExitPolicy` from the option values (`ExitPolicy.from_options`; or a stored preset, of
    the int8 engine when `quantize` is "int8"); a refused setting is a UsageError naming its option.
    then: a preset name, the second stage of a cascade."""
    second = None
    if then is not None:
        if mode != "cascade" or preset is not None:
            raise UsageError("--then names the second stage of --mode cascade")
        if model_dir is None:
            raise UsageError("--then needs a model folder")
        from seqexit.bundle import resolve_preset

        second = resolve_preset(model_dir, then, quantize=quantize)
    if preset is not None:
        if model_dir is None:
            raise UsageError("--preset needs a model folder")
        from seqexit.bundle import resolve_preset

        return _check_first_stage(resolve_preset(model_dir, preset, quantize=quantize), model_dir)
    try:
        policy = ExitPolicy.from_options(mode=mode, threshold=threshold, window=window, min_layer=min_layer,
                                         exit_layer=exit_layer, criterion=criterion, patience=patience, then=second)
    except PolicyError as err:
        raise UsageError(err.worded(OPTION_NAMES)) from None
    return _check_first_stage(policy, model_dir)


def _check_first_stage(policy: ExitPolicy, model_dir: Path | None) -> ExitPolicy:
    """A cascade policy needs the model folder to name its first stage: a usage error otherwise."""
    if policy.mode == "cascade" and model_dir is not None:
        from seqexit.cascade import read_first_stage

        if read_first_stage(model_dir) is None:
            raise UsageError(f"--mode cascade: {model_dir} has no first stage; pair one with "
                             f"`seqexit cascade {model_dir} --first SMALL_MODEL`")
    return policy


def pick_runtime_option(runtime: str, device: str) -> str:
    """The --runtime option checked: a known choice, installed, and able to run on `device`."""
    from seqexit.runtime import check_runtime
    from seqexit.runtime.select import INSTALL_HINT, onnx_installed

    try:
        value = check_runtime(runtime)
    except ValueError as err:
        raise UsageError(f"--runtime: {err}") from None
    if value == "onnx" and not onnx_installed():
        raise UsageError(f"--runtime onnx needs ONNX Runtime, which is not installed: {INSTALL_HINT}")
    if value == "onnx" and device != "cpu":
        raise UsageError(f"--runtime onnx runs on the CPU only: leave --device at cpu, not {device!r}")
    return value


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
    """The --device option checked by `seqexit.bundle.resolve_device` (a usage error if bad)."""
    from seqexit.bundle import resolve_device

    try:
        return resolve_device(device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
