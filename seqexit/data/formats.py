"""One entry point for every input format: pick the reader by name or by file extension."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .conll import iter_conll, read_conll
from .conllu import iter_conllu, read_conllu
from .errors import STDIN, DataError
from .jsonl import iter_jsonl, read_jsonl
from .schemes import is_span_tag
from .sentence import Sentence
from .text import iter_text, read_text

FORMATS = ("conll", "conllu", "jsonl", "text")


def guess_format(path: str | Path, *, labelled: bool) -> str:
    """`.conllu` -> conllu, `.jsonl`/`.json` -> jsonl, `.txt` (and stdin, `-`) -> text when
    unlabelled input is expected, anything else (`.conll`, `.iob`, `.tsv`, CoNLL-2003's
    `eng.train`...) -> conll."""
    if str(path) == STDIN and not labelled:
        return "text"
    suffix = Path(path).suffix.lower()
    if suffix == ".conllu":
        return "conllu"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".txt" and not labelled:
        return "text"
    return "conll"


def read_file(
    path: str | Path,
    format: str = "auto",
    *,
    labelled: bool = True,
    span_tags: bool = True,
    label_column: int = -1,
    upos: bool = True,
    strict: bool = False,
) -> list[Sentence]:
    """Read sentences from `path`.

    labelled: expect gold tags (training, evaluation); False reads words only.
    span_tags: tags are spans (NER, chunks: converted to IOB2) or, if False, per-word tags (POS).
    label_column: the tag column of a CoNLL file; upos: UPOS (else XPOS) from CoNLL-U.
    """
    if format == "auto":
        format = guess_format(path, labelled=labelled)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    scheme = "auto" if span_tags else None
    if format == "conll":
        sentences = read_conll(path, label_column=label_column if labelled else None, scheme=scheme, strict=strict)
    elif format == "conllu":
        sentences = read_conllu(path, tag=("upos" if upos else "xpos") if labelled else None)
    elif format == "jsonl":
        sentences = read_jsonl(path, scheme=scheme, strict=strict)
        if not labelled:
            for sentence in sentences:
                sentence.tags = None
    elif labelled:
        raise ValueError(f"{path}: raw text carries no gold tags; give a CoNLL, CoNLL-U or JSONL file")
    else:
        sentences = read_text(path)
    if labelled and span_tags:
        _check_span_tags(sentences)
    return sentences


def _check_span_tags(sentences: list[Sentence]) -> None:
    """Span tasks need span tags: say where the first per-word tag (a POS tag, say) stands."""
    for sentence in sentences:
        for i, tag in enumerate(sentence.tags or []):
            if not is_span_tag(tag):
                raise DataError(
                    sentence.source, sentence.lines[i] if sentence.lines else None,
                    f"tag {tag!r} is not a span tag (O, B-TYPE, I-TYPE...): per-word tags (POS) need task 'pos'",
                )


def iter_words(path: str | Path, format: str = "auto", *, nlp=None) -> Iterator[Sentence]:
    """Sentences of any input format as a stream, words only (tags, if any, are dropped): what
    tagging reads, so that a file of any size is tagged without holding it in memory. `-` is
    standard input."""
    if format == "auto":
        format = guess_format(path, labelled=False)
    if format == "conll":
        return iter_conll(path, label_column=None)
    if format == "conllu":
        return iter_conllu(path, tag=None)
    if format == "jsonl":
        return (_without_tags(s) for s in iter_jsonl(path))
    if format == "text":
        return iter_text(path, nlp=nlp)
    raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


def _without_tags(sentence: Sentence) -> Sentence:
    sentence.tags = None
    return sentence
