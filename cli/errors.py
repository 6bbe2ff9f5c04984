"""Exit codes and one-line errors for every command, never a traceback.

0: success. 2: a usage error (a bad option value, a missing file, a folder that is not a seqexit
model, a threshold out of range). 1: a runtime failure (bad content in an input file, reported
as `file:line: message`, or anything else that went wrong while running). 141: the reader of
standard output went away (`seqexit tag ... | head`): the command stops quietly, as Unix tools
killed by SIGPIPE do. 130: interrupted (Ctrl-C); 143: terminated (SIGTERM); either way after the
command's cleanup (no half-written output, no temporary file left).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from contextlib import contextmanager

import typer

from seqexit.data import DataError


class UsageError(ValueError):
    """The command was called wrongly: exit code 2."""


ON_BAD_LINE = typer.Option(
    "error", "--on-bad-line", metavar="[error|warn|skip]",
    help="A malformed input line: error (stop, exit 1); warn (skip its whole sentence and print each "
    "skipped line as file:line: why on stderr as it goes); skip (the same, every skipped line printed at the end). "
    "Either way the count of skipped lines ends the run on stderr.",
)


def bad_lines(policy: str):
    """The `BadLines` collector of --on-bad-line; the command calls its `finish()` when done."""
    from seqexit.data.errors import BAD_LINE_POLICIES, BadLines

    if policy not in BAD_LINE_POLICIES:
        raise UsageError(f"--on-bad-line must be one of {', '.join(BAD_LINE_POLICIES)}, not {policy!r}")
    return BadLines(policy)


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


class Terminated(KeyboardInterrupt):
    """SIGTERM during a command: raised where the command is, so that everything that cleans up
    after Ctrl-C (an output's temporary file, say) runs for it too; exit code 143 (128 + 15)."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def _sigterm_as_interrupt():
    """While the command runs, SIGTERM raises `Terminated` instead of killing the process
    without cleanup (Python's default); the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def friendly(command):
    """Run `command`, turning its errors into one red line on stderr and exit code 1 or 2
    (130 for Ctrl-C, 143 for SIGTERM, both after the command's cleanup)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with _sigterm_as_interrupt():
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except Terminated:
            raise fail("terminated", 143) from None
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
