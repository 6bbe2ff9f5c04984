"""CoNLL-U (Universal Dependencies): syntactic words with their UPOS or XPOS tags.

Multi-word token lines (`3-4 don't`) and empty nodes (`8.1`) are not syntactic words and get
no tag in UD's POS columns, so they are skipped; the multi-word tokens are kept in
`Sentence.meta["multiword"]` as (first id, last id, surface form) for writers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, BadLines, DataError, iter_lines, no_sentences
from .sentence import Sentence

_COLUMNS = {"upos": 3, "xpos": 4}
_WORD_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_ID = re.compile(r"^[0-9]+\.[1-9][0-9]*$")


def read_conllu(path: str | Path, *, tag: str | None = "upos", bad_lines: str | BadLines = "error") -> list[Sentence]:
    """Read a CoNLL-U file; `tag` is "upos", "xpos" or None (words only); `bad_lines` as in
    `read_conll` (a bad line's whole sentence is dropped and reported)."""
    bad = BadLines.of(bad_lines)
    sentences = list(iter_conllu(path, tag=tag, bad_lines=bad))
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    if not sentences:
        raise no_sentences(path, bad)
    return sentences


def iter_conllu(
    path: str | Path, *, tag: str | None = "upos", bad_lines: str | BadLines = "error", keep_lines: bool = False
) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file one at a time (the streaming reader behind `read_conllu`).

    keep_lines: keep the sentence's lines in `meta["raw"]` = {"format": "conllu", "lines": its
    comment and token lines as read (multi-word tokens and empty nodes too), "words": the index
    in `lines` of each word's line}, for writers that keep the input's columns."""
    if tag is not None and tag not in _COLUMNS:
        raise ValueError(f"tag must be 'upos', 'xpos' or None, not {tag!r}")
    bad = BadLines.of(bad_lines)
    source = "<stdin>" if str(path) == STDIN else str(path)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    span: list[int] = []
    errors: list[DataError] = []
    meta: dict = {}
    raw: list[str] = []  # keep_lines: the sentence's comment and token lines
    raw_words: list[int] = []  # keep_lines: each word's index in raw

    def sentence() -> Sentence | None:
        nonlocal meta
        built = None
        if errors:
            bad.drop(list(errors), span[0], span[-1])
        elif words:
            if keep_lines:
                meta["raw"] = {"format": "conllu", "lines": list(raw), "words": list(raw_words)}
            built = Sentence(list(words), list(tags) if tag else None, source, list(lines), meta)
        words.clear(), tags.clear(), lines.clear(), span.clear(), errors.clear(), raw.clear(), raw_words.clear()
        meta = {}
        return built

    for number, text in iter_lines(path, bad):
        span[:1] = span[:1] or [number]
        span[1:] = [number]
        problem = text if isinstance(text, DataError) else None
        if problem is None and not text.strip():
            span.pop()
            if span and (built := sentence()) is not None:
                yield built
            span.clear(), raw.clear(), raw_words.clear()
            meta = {}
            continue
        if keep_lines and problem is None:
            raw.append(text)
        if problem is None and text.startswith("#"):
            key, _, value = text[1:].partition("=")
            if value and key.strip() in ("sent_id", "text"):
                meta[key.strip()] = value.strip()
            continue
        if problem is None and not errors:
            problem = _word(source, number, text, tag, words, tags, lines, meta)
            if keep_lines and len(raw_words) < len(words):
                raw_words.append(len(raw) - 1)
        elif problem is None:
            continue  # the sentence is dropped already: later lines are not checked
        if problem is not None:
            bad.check(problem)
            errors.append(problem)
    if span and (built := sentence()) is not None:
        yield built


def _word(source: str, number: int, text: str, tag: str | None, words: list, tags: list, lines: list, meta: dict) -> DataError | None:
    """Add a token line's word to the sentence; return what is wrong with the line, if anything."""
    columns = text.split("\t")
    if len(columns) != 10:
        return DataError(source, number, f"CoNLL-U token lines have 10 tab-separated columns, found {len(columns)}")
    token_id, form = columns[0], columns[1]
    if _EMPTY_ID.match(token_id):
        return None
    range_match = _RANGE_ID.match(token_id)
    if range_match:
        meta.setdefault("multiword", []).append((int(range_match.group(1)), int(range_match.group(2)), form))
        return None
    if not _WORD_ID.match(token_id):
        return DataError(source, number, f"bad word ID {token_id!r}")
    if int(token_id) != len(words) + 1:
        return DataError(source, number, f"word ID {token_id} out of order (expected {len(words) + 1})")
    if not form:
        return DataError(source, number, "empty word form")
    value = columns[_COLUMNS[tag]] if tag else None
    if tag and value in ("", "_"):
        return DataError(source, number, f"word {form!r} has no {tag.upper()} tag")
    words.append(form)
    lines.append(number)
    if tag:
        tags.append(value)
    return None
