"""Write labelled sentences back out: CoNLL columns or JSONL, span tags in the scheme asked for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .schemes import INTERNAL_SCHEME, convert
from .sentence import Sentence


def write_conll(
    sentences: Sequence[Sentence], labels: Sequence[Sequence[str]], out: str | Path | IO[str], *, scheme: str | None = "iob2"
) -> None:
    """`word<TAB>label` lines, a blank line after each sentence. scheme=None writes labels as
    they are (POS); otherwise IOB2 labels are converted to `scheme`."""
    _write(out, [conll_block(s.words, l) for s, l in _checked(sentences, labels, scheme)])


def write_jsonl(
    sentences: Sequence[Sentence],
    labels: Sequence[Sequence[str]],
    out: str | Path | IO[str],
    *,
    scheme: str | None = "iob2",
    extra: Sequence[dict] | None = None,
) -> None:
    """One `{"tokens", "tags", **extra[i]}` object per line."""
    if extra is not None and len(extra) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(extra)} extra field dicts")
    rows = [
        json.dumps({"tokens": s.words, "tags": l, **(extra[i] if extra else {})}, ensure_ascii=False) + "\n"
        for i, (s, l) in enumerate(_checked(sentences, labels, scheme))
    ]
    _write(out, rows)


def _checked(
    sentences: Sequence[Sentence], labels: Sequence[Sequence[str]], scheme: str | None
) -> list[tuple[Sentence, list[str]]]:
    """Pair each sentence with its labels in the output scheme; every check runs before any
    byte is written, so a refused call leaves no half-written file behind."""
    if len(sentences) != len(labels):
        raise ValueError(f"{len(sentences)} sentences but {len(labels)} label lists")
    pairs = []
    for sentence, tags in zip(sentences, labels):
        if len(tags) != len(sentence.words):
            raise ValueError(f"{sentence.where()}: {len(sentence.words)} words but {len(tags)} labels")
        pairs.append((sentence, convert(tags, INTERNAL_SCHEME, scheme) if scheme else list(tags)))
    return pairs


def conll_block(words: Sequence[str], tags: Sequence[str]) -> str:
    """`word<TAB>tag` lines and the blank line that ends a sentence."""
    return "".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n"


def _write(out: str | Path | IO[str], chunks: list[str]) -> None:
    if isinstance(out, (str, Path)):
        with open(out, "w", encoding="utf-8") as handle:
            handle.writelines(chunks)
    else:
        out.writelines(chunks)
