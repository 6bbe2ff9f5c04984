"""JSONL: one `{"tokens": [...], "labels": [...]}` object per line, the schema `seqexit.output`
writes (`words` for tokens and `tags` for labels, as older files have them, also read)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, BadLines, DataError, iter_lines, no_sentences
from .labels import normalise_tags
from .sentence import Sentence


def read_jsonl(
    path: str | Path, *, scheme: str | None = "auto", strict: bool = False, bad_lines: str | BadLines = "error"
) -> list[Sentence]:
    """Read sentences from JSON lines; tags are optional, and converted like `read_conll`'s.
    `bad_lines` as in `read_conll` (a line is a sentence: a bad one is dropped and reported)."""
    bad = BadLines.of(bad_lines)
    sentences = list(iter_jsonl(path, bad_lines=bad))
    if any(s.tags is not None for s in sentences) and any(s.tags is None for s in sentences):
        kept = []
        for sentence in sentences:
            if sentence.tags is None:
                error = DataError(path, sentence.lines[0], "this line has no tags but others do")
                bad.check(error)
                bad.drop([error], sentence.lines[0])
            else:
                kept.append(sentence)
        sentences = kept
    if sentences and all(s.tags is not None for s in sentences):
        normalise_tags(sentences, scheme, strict=strict, path=str(path), bad=bad)
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    if not sentences:
        raise no_sentences(path, bad)
    return sentences


def iter_jsonl(path: str | Path, *, bad_lines: str | BadLines = "error") -> Iterator[Sentence]:
    """Sentences of a JSONL file one at a time, tags as written (the reader behind `read_jsonl`)."""
    bad = BadLines.of(bad_lines)
    source = "<stdin>" if str(path) == STDIN else str(path)
    for number, text in iter_lines(path, bad):
        if isinstance(text, DataError):
            bad.drop([text], number)
            continue
        if not text.strip():
            continue
        try:
            sentence = _sentence(source, number, text)
        except DataError as error:
            bad.check(error)
            bad.drop([error], number)
            continue
        yield sentence


def _sentence(source: str, number: int, text: str) -> Sentence:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(source, number, f"invalid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise DataError(source, number, "invalid JSON: nested too deeply") from None
    if not isinstance(row, dict):
        raise DataError(source, number, "each line must be a JSON object with a 'tokens' list")
    if not any(key in row for key in ("tokens", "words")):
        keys = ", ".join(repr(k) for k in list(row)[:5]) or "none"
        raise DataError(source, number, f"no 'tokens' (or 'words') list in this object (its keys: {keys})")
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
    return Sentence(list(tokens), list(tags) if tags is not None else None, source, [number] * len(tokens), meta)


def _field(row: dict, name: str, alias: str):
    return row[name] if name in row else row.get(alias)
