"""CoNLL column files: one token per line, columns split by tabs or spaces, blank line between
sentences, `-DOCSTART-` lines between documents (CoNLL-2003), label column chosen by index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, BadLines, DataError, iter_lines, no_sentences
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
    bad_lines: str | BadLines = "error",
) -> list[Sentence]:
    """Read a column file into sentences with IOB2 span tags (or raw tags for POS/chunk-free files).

    label_column: index of the tag column (default the last); None reads words only.
    scheme: "auto" (detect), one of iob1/iob2/iobes/bilou, or None for per-word tags (POS).
    strict: refuse tags the scheme forbids instead of repairing them (see `normalise_tags`).
    bad_lines: "error" (stop at the first bad line), "warn" or "skip" (drop its sentence and
    report it on stderr), or a `BadLines` collector shared across files (its owner calls `finish`).
    """
    bad = BadLines.of(bad_lines)
    sentences = list(iter_conll(path, label_column=label_column, word_column=word_column, bad_lines=bad))
    normalise_tags(sentences, scheme if label_column is not None else None, strict=strict, path=str(path), bad=bad)
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    if not sentences:
        raise no_sentences(path, bad)
    return sentences


def iter_conll(
    path: str | Path, *, label_column: int | None = -1, word_column: int = 0, bad_lines: str | BadLines = "error",
    keep_lines: bool = False,
) -> Iterator[Sentence]:
    """Sentences of a column file one at a time, tags as written (no scheme conversion): the
    streaming reader behind `read_conll`, for files too large to hold. A bad line raises
    `DataError`, or under `bad_lines` "warn"/"skip" drops its whole sentence (reported).

    keep_lines: keep the input lines in `meta["raw"]` = {"format": "conll", "separator": the
    file's ("\t", or " " for space-separated columns), "before": the blank and -DOCSTART- lines
    since the previous sentence, "tokens": the sentence's token lines as read}, for writers that
    keep the input's columns (`seqexit.output.ConllWriter(keep_columns=True)`)."""
    bad = BadLines.of(bad_lines)
    source = "<stdin>" if str(path) == STDIN else str(path)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    span: list[int] = []  # first and last input line of the sentence, bad lines included
    errors: list[DataError] = []
    n_columns: int | None = None
    separator: str | None = None
    doc = 0
    before: list[str] = []  # keep_lines: blank and -DOCSTART- lines since the last sentence
    raw: list[str] = []  # keep_lines: the sentence's token lines

    def sentence() -> Sentence | None:
        built = None
        if errors:
            bad.drop(list(errors), span[0], span[-1])
        else:
            meta: dict = {"doc": doc}
            if keep_lines:
                meta["raw"] = {"format": "conll", "separator": separator or " ", "before": list(before), "tokens": list(raw)}
                before.clear()
            built = Sentence(list(words), list(tags) if label_column is not None else None, source, list(lines), meta)
        words.clear(), tags.clear(), lines.clear(), span.clear(), errors.clear(), raw.clear()
        return built

    def reject(error: DataError) -> None:
        bad.check(error)
        errors.append(error)

    for number, text in iter_lines(path, bad):
        if isinstance(text, DataError):
            span[:1] = span[:1] or [number]
            span[1:] = [number]
            reject(text)
            continue
        docstart = bool(text.strip()) and text.split(None, 1)[0] == DOCSTART  # the whole first column, not a prefix
        if not text.strip() or docstart:
            if span and (built := sentence()) is not None:
                yield built
            doc += docstart
            if keep_lines:
                before.append(text)
            continue
        span[:1] = span[:1] or [number]
        span[1:] = [number]
        if separator is None:
            separator = "\t" if "\t" in text else None
        columns = text.split(separator) if separator else text.split()
        if n_columns is None:
            n_columns = len(columns)
            _check_layout(source, number, n_columns, label_column, word_column)
        if len(columns) != n_columns:
            reject(DataError(source, number, f"expected {n_columns} columns (as on the first token line), found {len(columns)}: {text!r}"))
            continue
        word = columns[word_column].strip()
        if not word:
            reject(DataError(source, number, f"empty token: {text!r}"))
            continue
        tag = columns[label_column].strip() if label_column is not None else None
        if tag == "":
            reject(DataError(source, number, f"empty tag: {text!r}"))
            continue
        words.append(word)
        lines.append(number)
        if keep_lines:
            raw.append(text)
        if tag is not None:
            tags.append(tag)
    if span and (built := sentence()) is not None:
        yield built


def _check_layout(path: str | Path, number: int, n_columns: int, label_column: int | None, word_column: int) -> None:
    for name, index in (("word", word_column), ("label", label_column)):
        if index is not None and not -n_columns <= index < n_columns:
            raise DataError(path, number, f"{name} column {index} does not exist: the line has {n_columns} columns")
    if label_column is not None and n_columns < 2:
        raise DataError(path, number, "one column only: a labelled file needs a word and a tag column")
