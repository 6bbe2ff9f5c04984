"""Raw text -> sentences of words, through spaCy's tokenizer and sentence boundaries.

The default pipeline is `spacy.blank("en")` plus the rule-based sentencizer: nothing to
download. A user's own pipeline is used as it is; it must set sentence boundaries (a parser,
senter or sentencizer), else each input line is one sentence.
"""

from __future__ import annotations

from functools import lru_cache
from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, iter_lines
from .sentence import Sentence


@lru_cache(maxsize=1)
def default_nlp():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def sentences_from_text(text: str, *, nlp=None, source: str | None = None, line: int | None = None) -> list[Sentence]:
    """Sentences of `text`; `meta["char_offsets"]` holds each word's (start, end) in `text`."""
    nlp = nlp or default_nlp()
    doc = nlp(text)
    spans = doc.sents if doc.has_annotation("SENT_START") else [doc[:]]
    sentences = []
    for span in spans:
        tokens = [t for t in span if not t.is_space]
        if not tokens:
            continue
        sentences.append(
            Sentence(
                [t.text for t in tokens],
                source=source,
                lines=[line] * len(tokens) if line is not None else None,
                meta={"text": span.text.strip(), "char_offsets": [(t.idx, t.idx + len(t.text)) for t in tokens], "line": line},
            )
        )
    return sentences


def read_text(path: str | Path, *, nlp=None) -> list[Sentence]:
    """Every non-blank line of a UTF-8 file, split into sentences (offsets relative to the line)."""
    return list(iter_text(path, nlp=nlp))


def iter_text(path: str | Path, *, nlp=None) -> Iterator[Sentence]:
    """`read_text` as a stream: sentences line by line, for files too large to hold."""
    source = "<stdin>" if str(path) == STDIN else str(path)
    for number, text in iter_lines(path):
        if text.strip():
            yield from sentences_from_text(text, nlp=nlp, source=source, line=number)
