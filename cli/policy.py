"""Command-line options that build an `ExitPolicy`, shared by `tag` and `evaluate`."""

from __future__ import annotations

import typer

from seqexit.exits import MODES, ExitPolicy

MODE = typer.Option("full", "--mode", help=f"Early exit: {', '.join(MODES)}.")
THRESHOLD = typer.Option(
    "0.0", "--threshold", help="tokee/sentee: halt below this normalised entropy (0-1); one value or one per layer, comma-separated."
)
WINDOW = typer.Option(2, "--window", help="tokee/sentee: half-width k of the uncertainty window (words i-k..i+k).")
MIN_LAYER = typer.Option(1, "--min-layer", help="tokee/sentee: no word halts before this layer.")
EXIT_LAYER = typer.Option(None, "--exit-layer", help="Static exit: stop every word at this layer (implies --mode static).")


def build_policy(mode: str, threshold: str, window: int, min_layer: int, exit_layer: int | None) -> ExitPolicy:
    """An `ExitPolicy` from the option values, with a clear error for a malformed threshold."""
    if exit_layer is not None:
        return ExitPolicy.static(exit_layer)
    try:
        values = [float(v) for v in threshold.split(",")]
    except ValueError:
        raise ValueError(f"--threshold must be a number or comma-separated numbers, not {threshold!r}") from None
    return ExitPolicy(mode=mode, threshold=values[0] if len(values) == 1 else tuple(values), window=window, min_layer=min_layer)
