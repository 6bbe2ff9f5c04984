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


BAD_LINE_POLICIES = ("error", "skip", "warn")


class BadLines:
    """What a reader does with a bad line (see docs/formats.md#bad-input), and the record of it.

    policy "error" (the default): raise the line's `DataError`, so reading stops there.
    "warn": drop the sentence holding the line and write `file:line: why` to stderr at once.
    "skip": drop it too, and write every dropped line with the summary at the end (`finish`),
    so that the output of a long run is not interleaved with warnings.
    Never silent: either way every bad line is written as `file:line: why`, then the count.
    One collector can serve several files; whoever creates it calls `finish` when done.
    """

    def __init__(self, policy: str = "error") -> None:
        if policy not in BAD_LINE_POLICIES:
            raise ValueError(f"bad-line policy must be one of {', '.join(BAD_LINE_POLICIES)}, not {policy!r}")
        self.policy = policy
        self.skipped: list[str] = []  # one "file:line: why (...)" per dropped bad line
        self.sentences = 0

    @classmethod
    def of(cls, value: "str | BadLines | None") -> "BadLines":
        return value if isinstance(value, BadLines) else cls(value or "error")

    def check(self, error: DataError) -> None:
        """Raise `error` under "error"; else return, and the reader drops the line's sentence
        (then calls `drop` with every bad line it held)."""
        if self.policy == "error":
            raise error

    def drop(self, errors: list[DataError], first: int | None = None, last: int | None = None) -> None:
        """Record a dropped sentence (input lines first..last) and the bad lines that dropped it."""
        span = "" if first is None else f" (line {first})" if last in (None, first) else f" (lines {first}-{last})"
        for error in errors:
            message = f"{error}; its sentence{span} was skipped"
            self.skipped.append(message)
            if self.policy == "warn":
                sys.stderr.write(f"warning: {message}\n")
                sys.stderr.flush()
        self.sentences += 1

    def finish(self) -> None:
        """Write the count of skipped lines to stderr (nothing when none was skipped)."""
        if not self.skipped:
            return
        n = len(self.skipped)
        text = f"warning: skipped {n} bad line(s) and their {self.sentences} sentence(s)\n"
        if self.policy == "skip":
            text = "".join(f"warning: {message}\n" for message in self.skipped) + text
        sys.stderr.write(text)
        sys.stderr.flush()


def iter_lines(path: str | Path, bad: BadLines | None = None) -> Iterator[tuple[int, "str | DataError"]]:
    """(1-based line number, text without line ending) of a UTF-8 file, read as a stream.

    `-` reads standard input. Non-UTF-8 bytes raise `DataError` naming the file and line,
    because a silently mis-decoded token is a silently wrong label; under a `bad` policy other
    than "error" such a line is yielded as its `DataError` instead, for the reader to drop its
    sentence. An empty file (or one with nothing but whitespace) yields blank lines or nothing:
    whether that is an error is the caller's call (a training set: yes; text to tag: no).
    """
    name = "<stdin>" if str(path) == STDIN else Path(path)
    try:
        handle = sys.stdin.buffer if str(path) == STDIN else open(path, "rb")
    except OSError as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError)):
            raise type(err)(f"{path}: no such file" if isinstance(err, FileNotFoundError) else f"{path}: is a folder") from None
        raise DataError(name, None, f"cannot read file: {err.strerror or err}") from None
    try:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\n")
            try:
                text = raw.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as err:
                error = DataError(name, number, f"not valid UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})")
                if bad is None:
                    raise error from None
                bad.check(error)
                yield number, error
                continue
            yield number, text
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def is_blank_file(path: str | Path) -> bool:
    """True if `path` (not stdin) holds nothing but whitespace, for the "file is empty" message."""
    if str(path) == STDIN:
        return False
    try:
        with open(path, "rb") as handle:
            return not any(line.strip() for line in handle)
    except OSError:
        return False


def no_sentences(path: str | Path, bad: BadLines | None = None) -> DataError:
    """The error of a reader that found no sentence where one is needed."""
    name = "<stdin>" if str(path) == STDIN else path
    if is_blank_file(path):
        return DataError(name, None, "file is empty")
    if bad is not None and bad.skipped:
        return DataError(name, None, f"no sentences found: every sentence had a bad line ({len(bad.skipped)} skipped; "
                         f"the first: {bad.skipped[0]})")
    return DataError(name, None, "no sentences found")


def read_lines(path: str | Path) -> list[str]:
    """Every line of a UTF-8 file (see `iter_lines`), without line endings."""
    lines = [text for _, text in iter_lines(path)]
    if not any(text.strip() for text in lines):
        raise no_sentences(path)
    return lines
