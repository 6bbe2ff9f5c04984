"""CoNLL-U (Universal Dependencies): syntactic words with their UPOS or XPOS tags.

Multi-word token lines (`3-4 don't`) and empty nodes (`8.1`) are not syntactic words and get
no tag in UD's POS columns, so they are skipped; the multi-word tokens are kept in
`Sentence.meta["multiword"]` as (first id, last id, surface form) for writers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, DataError, iter_lines
from .sentence import Sentence

_COLUMNS = {"upos": 3, "xpos": 4}
_WORD_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_ID = re.compile(r"^[0-9]+\.[1-9][0-9]*$")


def read_conllu(path: str | Path, *, tag: str | None = "upos") -> list[Sentence]:
    """Read a CoNLL-U file; `tag` is "upos", "xpos" or None (words only)."""
    sentences = list(iter_conllu(path, tag=tag))
    if not sentences:
        raise DataError(path, None, "no sentences found")
    return sentences


def iter_conllu(path: str | Path, *, tag: str | None = "upos") -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file one at a time (the streaming reader behind `read_conllu`)."""
    if tag is not None and tag not in _COLUMNS:
        raise ValueError(f"tag must be 'upos', 'xpos' or None, not {tag!r}")
    source = "<stdin>" if str(path) == STDIN else str(path)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    meta: dict = {}

    def sentence() -> Sentence:
        nonlocal meta
        built = Sentence(list(words), list(tags) if tag else None, source, list(lines), meta)
        words.clear(), tags.clear(), lines.clear()
        meta = {}
        return built

    for number, text in iter_lines(path):
        if not text.strip():
            if words:
                yield sentence()
            meta = {}
            continue
        if text.startswith("#"):
            key, _, value = text[1:].partition("=")
            if value and key.strip() in ("sent_id", "text"):
                meta[key.strip()] = value.strip()
            continue
        columns = text.split("\t")
        if len(columns) != 10:
            raise DataError(source, number, f"CoNLL-U token lines have 10 tab-separated columns, found {len(columns)}")
        token_id, form = columns[0], columns[1]
        if _EMPTY_ID.match(token_id):
            continue
        range_match = _RANGE_ID.match(token_id)
        if range_match:
            meta.setdefault("multiword", []).append((int(range_match.group(1)), int(range_match.group(2)), form))
            continue
        if not _WORD_ID.match(token_id):
            raise DataError(source, number, f"bad word ID {token_id!r}")
        if int(token_id) != len(words) + 1:
            raise DataError(source, number, f"word ID {token_id} out of order (expected {len(words) + 1})")
        if not form:
            raise DataError(source, number, "empty word form")
        words.append(form)
        lines.append(number)
        if tag:
            value = columns[_COLUMNS[tag]]
            if value in ("", "_"):
                raise DataError(source, number, f"word {form!r} has no {tag.upper()} tag")
            tags.append(value)
    if words:
        yield sentence()
