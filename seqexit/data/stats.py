"""Corpus statistics of a labelled file: counts, the tag scheme as written, and every scheme problem.

The ordinary readers convert span tags to IOB2 and repair (or refuse) tags their scheme forbids;
statistics must describe the file as it is, so here the tags are read raw and every violation is
listed with its line instead of stopping at the first one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .conll import iter_conll
from .conllu import iter_conllu
from .errors import BadLines, DataError
from .formats import guess_format
from .jsonl import iter_jsonl
from .schemes import SchemeViolation, UnknownTagError, decode_spans, detect_scheme, violations
from .sentence import Sentence

STATS_FORMATS = ("conll", "conllu", "jsonl")


@dataclass(frozen=True)
class Problem:
    """A tag the file's scheme forbids (or no scheme knows), at a 1-based line (None if unknown)."""

    line: int | None
    message: str


@dataclass
class CorpusStats:
    """What a labelled file holds. `labels` are the tags as written and `entities` the span types,
    both sorted by count (most frequent first) then name; `scheme` is None for per-word tags (POS),
    which have no entities and no scheme problems."""

    sentences: int
    tokens: int
    labels: dict[str, int]
    entities: dict[str, int]
    scheme: str | None
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict with the same fields (problems as `{"line", "message"}` dicts)."""
        return {
            "sentences": self.sentences,
            "tokens": self.tokens,
            "labels": dict(self.labels),
            "entities": dict(self.entities),
            "scheme": self.scheme,
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def corpus_stats(
    path: str | Path, format: str = "auto", *, label_column: int = -1, upos: bool = True,
    bad_lines: str | BadLines = "error",
) -> CorpusStats:
    """Count sentences, tokens, labels and entities of a CoNLL, CoNLL-U or JSONL file and list
    every tag its detected scheme forbids.

    label_column: the tag column of a CoNLL file; upos: UPOS (else XPOS) from CoNLL-U.
    A file that cannot be parsed at all raises `DataError` (file:line); scheme problems do not.
    bad_lines: as in `read_file`; the counts are then of the sentences kept. An empty file (or
    one whose every sentence was skipped) has all counts zero and no scheme.
    """
    bad = BadLines.of(bad_lines)
    sentences = _read_raw(path, format, label_column=label_column, upos=upos, bad=bad)
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    tag_lists = [s.tags for s in sentences if s.tags is not None]
    scheme = detect_scheme(tag_lists)
    problems: list[Problem] = []
    entities: Counter[str] = Counter()
    if scheme is not None:
        for sentence in sentences:
            readable = _check_sentence(sentence, scheme, problems)
            entities.update(span.label for span in decode_spans(readable, scheme))
    return CorpusStats(
        sentences=len(sentences),
        tokens=sum(len(s) for s in sentences),
        labels=_by_count(Counter(tag for tags in tag_lists for tag in tags)),
        entities=_by_count(entities),
        scheme=scheme,
        problems=problems,
    )


def _read_raw(path: str | Path, format: str, *, label_column: int, upos: bool, bad: BadLines) -> list[Sentence]:
    """Sentences with their tags exactly as written (no scheme conversion, no repair)."""
    if format == "auto":
        format = guess_format(path, labelled=True)
    if format not in STATS_FORMATS:
        raise ValueError(f"unknown format {format!r} for stats; choose one of {', '.join(STATS_FORMATS)}")
    if format == "conll":
        return list(iter_conll(path, label_column=label_column, bad_lines=bad))
    if format == "conllu":
        return list(iter_conllu(path, tag="upos" if upos else "xpos", bad_lines=bad))
    sentences = []
    for sentence in iter_jsonl(path, bad_lines=bad):
        if sentence.tags is None:
            error = DataError(path, sentence.lines[0], "no tags: stats needs a labelled file ('tags' on every line)")
            bad.check(error)
            bad.drop([error], sentence.lines[0])
        else:
            sentences.append(sentence)
    return sentences


def _check_sentence(sentence: Sentence, scheme: str, problems: list[Problem]) -> list[str]:
    """Append the sentence's problems in word order; return its tags with unknown ones read as O,
    so that one bad tag does not hide the violations after it."""
    original = list(sentence.tags or [])
    tags = list(original)
    found: list[tuple[int, str]] = []
    while True:
        try:
            wrong = violations(tags, scheme)
            break
        except UnknownTagError as err:
            found.append((err.index, str(err)))
            tags[err.index] = "O"
    found += [(v.index, _describe(v, original, scheme)) for v in wrong]
    for index, message in sorted(found):
        problems.append(Problem(sentence.lines[index] if sentence.lines else None, message))
    return tags


def _describe(violation: SchemeViolation, original: Sequence[str], scheme: str) -> str:
    """The violation's message, naming the previous tag as written (not as substituted)."""
    if violation.index:
        violation = dataclasses.replace(violation, previous=original[violation.index - 1])
    return violation.describe(scheme)


def _by_count(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
