"""The one error type for bad input: it always names the file and the line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path


class DataError(ValueError):
    """Bad input data, located at `path:line` (line is 1-based; None for whole-file problems)."""

    def __init__(self, path: str | Path | None, line: int | None, message: str) -> None:
        self.path = str(path) if path is not None else "<input>"
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


STDIN = "-"


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without line ending) of a UTF-8 file, read as a stream.

    `-` reads standard input. Non-UTF-8 bytes and files with nothing but whitespace raise
    `DataError` naming the file (and the line of the bad bytes), because a silently mis-decoded
    token is a silently wrong label.
    """
    name = "<stdin>" if str(path) == STDIN else Path(path)
    try:
        handle = sys.stdin.buffer if str(path) == STDIN else open(path, "rb")
    except OSError as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError)):
            raise type(err)(f"{path}: no such file" if isinstance(err, FileNotFoundError) else f"{path}: is a folder") from None
        raise DataError(name, None, f"cannot read file: {err.strerror or err}") from None
    seen_text = False
    try:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\n")
            try:
                text = raw.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as err:
                raise DataError(
                    name, number, f"not valid UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})"
                ) from None
            seen_text = seen_text or bool(text.strip())
            yield number, text
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    if not seen_text:
        raise DataError(name, None, "file is empty")


def read_lines(path: str | Path) -> list[str]:
    """Every line of a UTF-8 file (see `iter_lines`), without line endings."""
    return [text for _, text in iter_lines(path)]
