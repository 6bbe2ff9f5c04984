"""`--json` (stats, info, calibrate, evaluate): print exactly one JSON object on stdout.

Not the tagged-output files (CoNLL, JSONL, DocBin): those are `seqexit.output`'s."""

from __future__ import annotations

import json
import math

import typer


def _clean(value):
    """JSON-safe: NaN/inf become null, tuples lists, dict keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(payload: dict) -> None:
    typer.echo(json.dumps(_clean(payload), ensure_ascii=False))
