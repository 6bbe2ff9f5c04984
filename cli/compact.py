"""`seqexit compact`: a model folder stored as what fine-tuning changed against its backbone."""

from __future__ import annotations

from pathlib import Path

import typer

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
    from seqexit.bundle import ModelBundle, save_model

    source = ModelBundle.find(model)
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"{output} exists and is not empty")
    save_model(source.load(), output, compact_against=backbone, presets=source.all_presets())
    size = sum(p.stat().st_size for p in output.iterdir())
    typer.echo(f"compact model in {output} ({size / 1e6:.1f} MB); measure its cost with seqexit evaluate")
