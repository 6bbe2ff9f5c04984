"""The `seqexit` command line: a thin shell over the library."""

from __future__ import annotations

import typer

from .calibrate import calibrate
from .compact import compact
from .evaluate import evaluate
from .info import info
from .learn_exits import learn_exits
from .stats import stats
from .tag import tag
from .train import train

app = typer.Typer(help="seqexit: fast transformer sequence labeling by early exit.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for command in (tag, train, evaluate, calibrate, learn_exits, compact, info, stats):
    app.command()(command)

if __name__ == "__main__":
    app()
