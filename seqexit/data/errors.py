"""The one error type for bad input: it always names the file and the line."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data, located at `path:line` (line is 1-based; None for whole-file problems)."""

    def __init__(self, path: str | Path | None, line: int | None, message: str) -> None:
        self.path = str(path) if path is not None else "<input>"
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file as lines without line endings.

    Non-UTF-8 bytes and empty files raise `DataError` naming the file (and the line of the bad
    bytes), because a silently mis-decoded token is a silently wrong label.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, None, f"cannot read file: {err.strerror or err}") from None
    if not raw.strip():
        raise DataError(path, None, "file is empty")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise DataError(
                path, number, f"not valid UTF-8 (byte {line[err.start]:#04x} at column {err.start + 1})"
            ) from None
    return out
