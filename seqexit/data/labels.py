"""Bring a reader's raw tags into seqexit's internal form, with file:line errors."""

from __future__ import annotations

import logging

from .errors import BadLines, DataError
from .schemes import INTERNAL_SCHEME, UnknownTagError, convert, detect_scheme, violations
from .sentence import Sentence

log = logging.getLogger(__name__)


def normalise_tags(
    sentences: list[Sentence], scheme: str | None, *, strict: bool, path: str, bad: BadLines | None = None
) -> str | None:
    """Convert every sentence's span tags from `scheme` to IOB2 in place; return the scheme.

    `scheme="auto"` detects it; None (or a detection that finds no span tags) leaves the tags
    as they are (POS and other per-word tags). Tags the scheme forbids at their place raise a
    `DataError` when `strict`, else they are repaired the way conlleval reads them (an entity
    starts there) and a warning says where. Under a `bad` policy other than "error", a
    sentence with an unknown tag (or, when `strict`, a forbidden one) is removed from
    `sentences` (in place) and reported instead.
    """
    tagged = [s for s in sentences if s.tags is not None]
    if scheme == "auto":
        scheme = detect_scheme([s.tags for s in tagged])
    if scheme is None:
        return None
    repairs: list[str] = []
    dropped: set[int] = set()
    for sentence in tagged:
        try:
            found = violations(sentence.tags, scheme)
            if strict and found:
                raise DataError(path, _line(sentence, found[0].index), found[0].describe(scheme))
        except (UnknownTagError, DataError) as err:
            error = err if isinstance(err, DataError) else DataError(path, _line(sentence, err.index), str(err))
            if bad is None:
                raise error from None
            bad.check(error)
            bad.drop([error], *((sentence.lines[0], sentence.lines[-1]) if sentence.lines else ()))
            dropped.add(id(sentence))
            continue
        for problem in found:
            where = _line(sentence, problem.index)
            repairs.append(f"{path}:{where}: {problem.describe(scheme)}")
        if found:
            sentence.meta["repairs"] = [p.index for p in found]
        sentence.tags = convert(sentence.tags, scheme, INTERNAL_SCHEME)
    if dropped:
        sentences[:] = [s for s in sentences if id(s) not in dropped]
    if repairs:
        log.warning(
            "%d tag(s) not valid %s were read leniently (pass strict=True to refuse): %s",
            len(repairs), scheme.upper(), "; ".join(repairs[:5]) + (" ..." if len(repairs) > 5 else ""),
        )
    return scheme


def _line(sentence: Sentence, index: int) -> int | None:
    return sentence.lines[index] if sentence.lines else None


def label_set(sentences: list[Sentence], span_scheme: bool) -> list[str]:
    """The label inventory of gold-tagged sentences: for spans `O` then B-/I- of every type
    (both, even if one never occurs), else the sorted tags."""
    tags = {tag for s in sentences if s.tags for tag in s.tags}
    if not tags:
        raise ValueError("no tagged sentences to take labels from")
    if not span_scheme:
        return sorted(tags)
    types = sorted({tag[2:] for tag in tags if tag != "O"})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in "BI"]
