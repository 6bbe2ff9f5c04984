"""One entry point for every input format: pick the reader by name or by file extension."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from .conll import iter_conll, read_conll
from .conllu import iter_conllu, read_conllu
from .errors import STDIN, BadLines, DataError, is_blank_file, no_sentences
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
    bad_lines: str | BadLines = "error",
) -> list[Sentence]:
    """Read sentences from `path`.

    labelled: expect gold tags (training, evaluation); False reads words only.
    span_tags: tags are spans (NER, chunks: converted to IOB2) or, if False, per-word tags (POS).
    label_column: the tag column of a CoNLL file; upos: UPOS (else XPOS) from CoNLL-U.
    bad_lines: "error" (default: the first bad line raises `DataError`), "warn" or "skip" (each
    bad line's sentence is dropped and reported on stderr; see `BadLines`), or a `BadLines`
    collector shared across files, whose owner calls `finish`. No sentence left: `DataError`.
    """
    bad = BadLines.of(bad_lines)
    if format == "auto":
        format = guess_format(path, labelled=labelled)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    scheme = "auto" if span_tags else None
    if format == "conll":
        sentences = read_conll(path, label_column=label_column if labelled else None, scheme=scheme, strict=strict,
                               bad_lines=bad)
    elif format == "conllu":
        sentences = read_conllu(path, tag=("upos" if upos else "xpos") if labelled else None, bad_lines=bad)
    elif format == "jsonl":
        sentences = read_jsonl(path, scheme=scheme, strict=strict, bad_lines=bad)
        if not labelled:
            for sentence in sentences:
                sentence.tags = None
    elif labelled:
        raise ValueError(f"{path}: raw text carries no gold tags; give a CoNLL, CoNLL-U or JSONL file")
    else:
        sentences = read_text(path, bad_lines=bad)
    if labelled and span_tags:
        sentences = _check_span_tags(sentences, bad)
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    if not sentences:
        raise no_sentences(path, bad)
    return sentences


def _check_span_tags(sentences: list[Sentence], bad: BadLines) -> list[Sentence]:
    """Span tasks need span tags: say where a per-word tag (a POS tag, say) stands."""
    kept = []
    for sentence in sentences:
        wrong = [i for i, tag in enumerate(sentence.tags or []) if not is_span_tag(tag)]
        if not wrong:
            kept.append(sentence)
            continue
        i = wrong[0]
        error = DataError(
            sentence.source, sentence.lines[i] if sentence.lines else None,
            f"tag {sentence.tags[i]!r} is not a span tag (O, B-TYPE, I-TYPE...): per-word tags (POS) need task 'pos'",
        )
        bad.check(error)
        bad.drop([error], *((sentence.lines[0], sentence.lines[-1]) if sentence.lines else ()))
    return kept


def iter_words(
    path: str | Path, format: str = "auto", *, nlp=None, bad_lines: str | BadLines = "error", keep_lines: bool = False
) -> Iterator[Sentence]:
    """Sentences of any input format as a stream, words only (tags, if any, are dropped): what
    tagging reads, so that a file of any size is tagged without holding it in memory. `-` is
    standard input. An empty file yields nothing (with a warning on stderr): tagging nothing
    gives nothing. `bad_lines` as in `read_file`: a bad line's whole sentence is dropped and
    reported (never part of one: every word read is tagged). keep_lines: CoNLL and CoNLL-U only:
    each sentence keeps its input lines in `meta["raw"]` (see `iter_conll`, `iter_conllu`) for
    `ConllWriter(keep_columns=True)`; ValueError for raw text and JSONL (no columns to keep)."""
    if format == "auto":
        format = guess_format(path, labelled=False)
    if keep_lines and format not in ("conll", "conllu"):
        raise ValueError(f"{path}: {format} input has no columns to keep; that needs CoNLL or CoNLL-U input")
    bad = BadLines.of(bad_lines)
    if format == "conll":
        stream = iter_conll(path, label_column=None, bad_lines=bad, keep_lines=keep_lines)
    elif format == "conllu":
        stream = iter_conllu(path, tag=None, bad_lines=bad, keep_lines=keep_lines)
    elif format == "jsonl":
        stream = (_without_tags(s) for s in iter_jsonl(path, bad_lines=bad))
    elif format == "text":
        stream = iter_text(path, nlp=nlp, bad_lines=bad)
    else:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    return _reported(stream, path, bad, owned=not isinstance(bad_lines, BadLines))


def _reported(stream: Iterator[Sentence], path: str | Path, bad: BadLines, owned: bool) -> Iterator[Sentence]:
    """`stream`, then a warning if the file was empty, and the bad-line count if `owned`."""
    count = 0
    for sentence in stream:
        count += 1
        yield sentence
    if count == 0 and is_blank_file(path):
        sys.stderr.write(f"warning: {'<stdin>' if str(path) == STDIN else path}: file is empty\n")
    if owned:
        bad.finish()


def _without_tags(sentence: Sentence) -> Sentence:
    sentence.tags = None
    return sentence
