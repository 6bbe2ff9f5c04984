"""The `seqexit` command line: a thin shell over the library."""

from __future__ import annotations

import typer

from .evaluate import evaluate
from .tag import tag
from .train import train

app = typer.Typer(help="seqexit: fast transformer sequence labeling by early exit.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command()(tag)
app.command()(train)
app.command()(evaluate)

if __name__ == "__main__":
    app()
