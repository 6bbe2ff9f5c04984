"""The `seqexit` command line: a thin shell over the library."""

from __future__ import annotations

import atexit
import gc

import typer

from .adopt import adopt
from .calibrate import calibrate
from .cascade import cascade
from .compact import compact
from .context_exits import context_exits
from .evaluate import evaluate
from .info import info
from .learn_exits import learn_exits
from .stats import stats
from .tag import tag
from .train import train

# Start-up builds ~400k long-lived objects (torch, transformers, spaCy). At the default threshold
# (700) the collector runs ~1000 times meanwhile: ~1 s of a one-line `seqexit tag` (0.3 s at
# 10,000). At exit it would walk them all once more (~1 s) to free memory the OS takes back anyway.
gc.set_threshold(10_000)
atexit.register(gc.freeze)

app = typer.Typer(help="seqexit: fast transformer sequence labeling by early exit.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for command in (tag, train, evaluate, calibrate, cascade, learn_exits, context_exits, adopt, compact, info, stats):
    app.command()(command)

if __name__ == "__main__":
    app()
