"""`seqexit cascade`: pair a model with a smaller first-stage model, for policies of mode cascade."""

from __future__ import annotations

from pathlib import Path

import typer

from .errors import UsageError, friendly


@friendly
def cascade(
    model: Path = typer.Argument(..., help="Model folder (the second stage): cascade.json is written there."),
    first: str | None = typer.Option(None, "--first", help="The first-stage model: a folder or a shipped model's name; "
                                     "it must label with the same labels and scheme."),
    remove: bool = typer.Option(False, "--remove", help="Unpair: delete MODEL/cascade.json."),
) -> None:
    """Pair MODEL with a smaller, faster FIRST model: under --mode cascade the first model tags
    every sentence at full depth, and only the sentences where it is unsure (a word's normalised
    entropy at or above --threshold) run on MODEL. `seqexit calibrate MODEL DEV` then measures
    cascades beside the other policies, and the presets it picks may be cascades.

    Examples:

      seqexit cascade runs/mpnet-ner --first en-ner

      seqexit tag news.txt -m runs/mpnet-ner --mode cascade --threshold 0.05 --then accurate
    """
    from seqexit.bundle import find_model
    from seqexit.cascade import CASCADE_FILE, pair_first_stage, read_first_stage

    folder = find_model(model)
    if remove:
        if first is not None:
            raise UsageError("give either --first or --remove, not both")
        path = folder / CASCADE_FILE
        if not path.is_file():
            raise UsageError(f"{folder} has no first stage to remove")
        path.unlink()
        typer.echo(f"removed {path}")
        return
    if first is None:
        paired = read_first_stage(folder)
        if paired is None:
            raise UsageError(f"{folder} has no first stage; pair one with --first SMALL_MODEL")
        typer.echo(f"{folder}: first stage {paired}")
        return
    path = pair_first_stage(folder, first)
    typer.echo(f"first stage {first} paired with {folder} ({path})")
    typer.echo(f"next: seqexit calibrate {folder} DEV_FILE  (measures cascades beside the other policies)")
