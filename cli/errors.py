"""Exit codes and one-line errors for every command, never a traceback.

0: success. 2: a usage error (a bad option value, a missing file, a folder that is not a seqexit
model, a threshold out of range). 1: a runtime failure (bad content in an input file, reported
as `file:line: message`, or anything else that went wrong while running). 141: the reader of
standard output went away (`seqexit tag ... | head`): the command stops quietly, as Unix tools
killed by SIGPIPE do.
"""

from __future__ import annotations

import functools
import os
import sys

import typer

from seqexit.data import DataError


class UsageError(ValueError):
    """The command was called wrongly: exit code 2."""


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for `cat big | head`


def _quiet_after_broken_pipe() -> typer.Exit:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return typer.Exit(BROKEN_PIPE_EXIT)


def friendly(command):
    """Run `command`, turning its errors into one red line on stderr and exit code 1 or 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:
            raise _quiet_after_broken_pipe() from None
        except DataError as err:
            raise fail(str(err), 1) from None
        except (UsageError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise fail(str(err), 2) from None
        except ValueError as err:  # the library's refusals of bad arguments
            raise fail(str(err), 2) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as err:  # noqa: BLE001 - a runtime failure is one line, not a traceback
            raise fail(f"{type(err).__name__}: {err}", 1) from None

    return wrapper
