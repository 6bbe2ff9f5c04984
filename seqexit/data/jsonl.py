"""JSONL: one `{"tokens": [...], "labels": [...]}` object per line, the schema `seqexit.output`
writes (`words` for tokens and `tags` for labels, as older files have them, also read)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, DataError, iter_lines
from .labels import normalise_tags
from .sentence import Sentence


def read_jsonl(path: str | Path, *, scheme: str | None = "auto", strict: bool = False) -> list[Sentence]:
    """Read sentences from JSON lines; tags are optional, and converted like `read_conll`'s."""
    sentences = list(iter_jsonl(path))
    if not sentences:
        raise DataError(path, None, "no sentences found")
    if all(s.tags is not None for s in sentences):
        normalise_tags(sentences, scheme, strict=strict, path=str(path))
    elif any(s.tags is not None for s in sentences):
        first = next(s for s in sentences if s.tags is None)
        raise DataError(path, first.lines[0], "this line has no tags but others do")
    return sentences


def iter_jsonl(path: str | Path) -> Iterator[Sentence]:
    """Sentences of a JSONL file one at a time, tags as written (the reader behind `read_jsonl`)."""
    source = "<stdin>" if str(path) == STDIN else str(path)
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(source, number, f"invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(source, number, "each line must be a JSON object with a 'tokens' list")
        tokens = _field(row, "tokens", "words")
        tags = _field(row, "labels", "tags")
        if not isinstance(tokens, list) or not tokens:
            raise DataError(source, number, "'tokens' must be a non-empty list of strings")
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or not token.strip():
                raise DataError(source, number, f"token {i} is empty or not a string: {token!r}")
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise DataError(source, number, "'tags' must be a list of strings")
            if len(tags) != len(tokens):
                raise DataError(source, number, f"{len(tokens)} tokens but {len(tags)} tags")
        meta = {k: v for k, v in row.items() if k not in ("tokens", "words", "tags", "labels")}
        yield Sentence(list(tokens), list(tags) if tags is not None else None, source, [number] * len(tokens), meta)


def _field(row: dict, name: str, alias: str):
    return row[name] if name in row else row.get(alias)
