"""`seqexit compact`: a model folder stored as what fine-tuning changed against its backbone."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from seqexit.exits.presets import PRESETS_FILE
from seqexit.model import MultiExitTagger
from seqexit.shipped import resolve_model

from .errors import UsageError, friendly


@friendly
def compact(
    model: str = typer.Argument(..., help="Trained model folder (as written by seqexit train)."),
    output: Path = typer.Argument(..., help="New folder for the compact model."),
    backbone: str = typer.Option("minilm-l6", help="The installed backbone the model was fine-tuned from."),
) -> None:
    """Write a compact copy of MODEL: int8 per-row deltas against the installed backbone, the
    exits whole, unchanged tensors not at all (about 11 MB instead of 90 MB for MiniLM-L6).
    Loading needs the same backbone installed (checked by SHA-256). Presets are copied.

    Example: seqexit compact runs/ner/model my-ner
    """
    source = resolve_model(model)
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"{output} exists and is not empty")
    tagger = MultiExitTagger.load(source)
    tagger.save_compact(output, backbone)
    if (source / PRESETS_FILE).is_file():
        shutil.copy2(source / PRESETS_FILE, output / PRESETS_FILE)
    size = sum(p.stat().st_size for p in output.iterdir())
    typer.echo(f"compact model in {output} ({size / 1e6:.1f} MB); measure its cost with seqexit evaluate")
