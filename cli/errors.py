"""Turn the library's input errors into one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import functools

import typer

from seqexit.data import DataError


def friendly(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (DataError, FileNotFoundError, ValueError) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper
