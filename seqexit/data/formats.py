"""One entry point for every input format: pick the reader by name or by file extension."""

from __future__ import annotations

from pathlib import Path

from .conll import read_conll
from .conllu import read_conllu
from .errors import DataError
from .jsonl import read_jsonl
from .schemes import is_span_tag
from .sentence import Sentence
from .text import read_text

FORMATS = ("conll", "conllu", "jsonl", "text")


def guess_format(path: str | Path, *, labelled: bool) -> str:
    """`.conllu` -> conllu, `.jsonl`/`.json` -> jsonl, `.txt` -> text when unlabelled input is
    expected, anything else (`.conll`, `.iob`, `.tsv`, CoNLL-2003's `eng.train`...) -> conll."""
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
