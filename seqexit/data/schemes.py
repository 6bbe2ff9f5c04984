"""Tag schemes for spans (IOB1, IOB2, IOBES, BILOU): detect, validate, convert, decode.

seqexit keeps span tags in IOB2 internally. Every conversion goes through spans: decode the
tags leniently (as conlleval does), then encode the spans in the target scheme. Validation
falls out of the same two steps: a tag that differs from the canonical re-encoding of its own
spans is a tag the scheme forbids at that place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SCHEMES = ("iob1", "iob2", "iobes", "bilou")
INTERNAL_SCHEME = "iob2"

_PREFIXES = {"iob1": "BI", "iob2": "BI", "iobes": "BIES", "bilou": "BILU"}
_TAG = re.compile(r"^([BIESLU])-(.+)$")


@dataclass(frozen=True)
class Span:
    """An entity or chunk: words [start, end) of one type."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class SchemeViolation:
    """A tag the scheme forbids at `index`; `repaired` is how it was read instead."""

    index: int
    tag: str
    previous: str
    repaired: str

    def describe(self, scheme: str) -> str:
        return (
            f"tag {self.tag!r} is not valid {scheme.upper()} after {self.previous!r}; "
            f"read as {self.repaired!r}"
        )


class UnknownTagError(ValueError):
    """A tag that no span scheme can read (e.g. `X-PER` or `B-`)."""

    def __init__(self, index: int, tag: str, scheme: str) -> None:
        self.index, self.tag = index, tag
        allowed = "/".join(_PREFIXES[scheme])
        super().__init__(f"unknown tag {tag!r}: {scheme.upper()} tags are O or {allowed}-TYPE")


def split_tag(tag: str) -> tuple[str, str | None]:
    """`B-PER` -> ('B', 'PER'); `O` -> ('O', None). Raises ValueError on anything else."""
    if tag == "O":
        return "O", None
    match = _TAG.match(tag)
    if not match:
        raise ValueError(tag)
    return match.group(1), match.group(2)


def is_span_tag(tag: str) -> bool:
    return tag == "O" or _TAG.match(tag) is not None


def detect_scheme(sequences: Sequence[Sequence[str]]) -> str | None:
    """Guess the span scheme of tag sequences; None when they are not span tags (e.g. POS).

    Span tags are `O` or `P-TYPE`; when most tags have that form the file is a span file (and
    the rest are unknown tags to report, not a reason to call it POS). E-/S- mean IOBES, L-/U-
    BILOU. Between IOB1 and IOB2 the evidence is where entities start: IOB1 starts them with I-
    and IOB2 with B-; the majority wins, so a few quirks (like the two B-MISC after O in
    CoNLL-2003's IOB1 train file) do not flip the verdict.
    """
    prefixes: set[str] = set()
    starts_with_i = starts_with_b = span_like = other = 0
    for tags in sequences:
        prev_type = None
        for tag in tags:
            if not is_span_tag(tag):
                other += 1
                prev_type = None
                continue
            span_like += 1
            prefix, label = split_tag(tag)
            prefixes.add(prefix)
            if prefix == "I" and prev_type != label:
                starts_with_i += 1
            if prefix == "B" and prev_type != label:
                starts_with_b += 1
            prev_type = label
    if prefixes <= {"O"} or other > span_like:
        return None
    if prefixes & {"E", "S"}:
        return "iobes"
    if prefixes & {"L", "U"}:
        return "bilou"
    return "iob1" if starts_with_i > starts_with_b else "iob2"


def decode_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """Spans of a tag sequence, read leniently the way conlleval reads ill-formed input."""
    _check_scheme(scheme)
    allowed = _PREFIXES[scheme]
    spans: list[Span] = []
    label: str | None = None
    start = 0
    closed = True

    def close(end: int) -> None:
        nonlocal label, closed
        if label is not None and not closed:
            spans.append(Span(label, start, end))
        label, closed = None, True

    for i, tag in enumerate(tags):
        try:
            prefix, typ = split_tag(tag)
        except ValueError:
            raise UnknownTagError(i, tag, scheme) from None
        if prefix != "O" and prefix not in allowed:
            raise UnknownTagError(i, tag, scheme)
        continues = not closed and label == typ
        if prefix == "O":
            close(i)
        elif prefix in "SU":
            close(i)
            spans.append(Span(typ, i, i + 1))
        elif prefix == "B" or (prefix == "I" and not continues):
            close(i)
            label, start, closed = typ, i, False
        elif prefix in "EL":
            if not continues:
                close(i)
                start, label, closed = i, typ, False
            close(i + 1)
        # prefix == "I" and continues: nothing to do
    close(len(tags))
    return spans


def encode_spans(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of `length` words carrying `spans` (non-overlapping) in `scheme`."""
    _check_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_label = -1, None
    for span in sorted(spans, key=lambda s: s.start):
        size = span.end - span.start
        if scheme == "iob1":
            first = "B" if (span.start == prev_end and span.label == prev_label) else "I"
            tags[span.start] = f"{first}-{span.label}"
            for i in range(span.start + 1, span.end):
                tags[i] = f"I-{span.label}"
        else:
            single, last = {"iob2": ("B", "I"), "iobes": ("S", "E"), "bilou": ("U", "L")}[scheme]
            if size == 1:
                tags[span.start] = f"{single}-{span.label}"
            else:
                tags[span.start] = f"B-{span.label}"
                for i in range(span.start + 1, span.end - 1):
                    tags[i] = f"I-{span.label}"
                tags[span.end - 1] = f"{last}-{span.label}"
        prev_end, prev_label = span.end, span.label
    return tags


def violations(tags: Sequence[str], scheme: str) -> list[SchemeViolation]:
    """Every place where `tags` is not the canonical form of its own spans in `scheme`."""
    canonical = encode_spans(decode_spans(tags, scheme), len(tags), scheme)
    return [
        SchemeViolation(i, tag, tags[i - 1] if i else "(sentence start)", canonical[i])
        for i, tag in enumerate(tags)
        if tag != canonical[i]
    ]


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Re-encode tags from one scheme to another (ill-formed input is read leniently)."""
    return encode_spans(decode_spans(tags, source), len(tags), target)


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
