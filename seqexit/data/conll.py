"""CoNLL column files: one token per line, columns split by tabs or spaces, blank line between
sentences, `-DOCSTART-` lines between documents (CoNLL-2003), label column chosen by index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, DataError, iter_lines
from .labels import normalise_tags
from .sentence import Sentence

DOCSTART = "-DOCSTART-"


def read_conll(
    path: str | Path,
    *,
    label_column: int | None = -1,
    word_column: int = 0,
    scheme: str | None = "auto",
    strict: bool = False,
) -> list[Sentence]:
    """Read a column file into sentences with IOB2 span tags (or raw tags for POS/chunk-free files).

    label_column: index of the tag column (default the last); None reads words only.
    scheme: "auto" (detect), one of iob1/iob2/iobes/bilou, or None for per-word tags (POS).
    strict: refuse tags the scheme forbids instead of repairing them (see `normalise_tags`).
    """
    sentences = list(iter_conll(path, label_column=label_column, word_column=word_column))
    if not sentences:
        raise DataError(path, None, "no sentences found")
    normalise_tags(sentences, scheme if label_column is not None else None, strict=strict, path=str(path))
    return sentences


def iter_conll(path: str | Path, *, label_column: int | None = -1, word_column: int = 0) -> Iterator[Sentence]:
    """Sentences of a column file one at a time, tags as written (no scheme conversion): the
    streaming reader behind `read_conll`, for files too large to hold."""
    source = "<stdin>" if str(path) == STDIN else str(path)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    n_columns: int | None = None
    separator: str | None = None
    doc = 0

    def sentence() -> Sentence:
        built = Sentence(list(words), list(tags) if label_column is not None else None, source, list(lines), {"doc": doc})
        words.clear(), tags.clear(), lines.clear()
        return built

    for number, text in iter_lines(path):
        if not text.strip() or text.startswith(DOCSTART):
            if words:
                yield sentence()
            doc += text.startswith(DOCSTART)
            continue
        if separator is None:
            separator = "\t" if "\t" in text else None
        columns = text.split(separator) if separator else text.split()
        if n_columns is None:
            n_columns = len(columns)
            _check_layout(source, number, n_columns, label_column, word_column)
        if len(columns) != n_columns:
            raise DataError(source, number, f"expected {n_columns} columns (as on the first token line), found {len(columns)}: {text!r}")
        word = columns[word_column].strip()
        if not word:
            raise DataError(source, number, "empty token")
        words.append(word)
        lines.append(number)
        if label_column is not None:
            tags.append(columns[label_column].strip())
    if words:
        yield sentence()


def _check_layout(path: str | Path, number: int, n_columns: int, label_column: int | None, word_column: int) -> None:
    for name, index in (("word", word_column), ("label", label_column)):
        if index is not None and not -n_columns <= index < n_columns:
            raise DataError(path, number, f"{name} column {index} does not exist: the line has {n_columns} columns")
    if label_column is not None and n_columns < 2:
        raise DataError(path, number, "one column only: a labelled file needs a word and a tag column")
