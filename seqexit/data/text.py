"""Raw text -> sentences of words, through spaCy's tokenizer and sentence boundaries.

The default pipeline is `spacy.blank("en")` plus the rule-based sentencizer: nothing to
download. A user's own pipeline is used as it is; it must set sentence boundaries (a parser,
senter or sentencizer), else each input line is one sentence.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import read_lines
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
    path = Path(path)
    sentences = []
    for number, text in enumerate(read_lines(path), start=1):
        if text.strip():
            sentences.extend(sentences_from_text(text, nlp=nlp, source=str(path), line=number))
    return sentences
