"""Raw text -> sentences of words, through spaCy's tokenizer and sentence boundaries.

The default pipeline is `spacy.blank("en")` plus the rule-based sentencizer: nothing to
download. A user's own pipeline is used as it is; it must set sentence boundaries (a parser,
senter or sentencizer), else each input line is one sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import STDIN, BadLines, DataError, iter_lines
from .sentence import Sentence


VOCAB_LIMIT = 300_000  # strings the default pipeline may learn before it is built afresh
_default: list = []  # the default pipeline, once built


def default_nlp():
    """`spacy.blank("en")` + the sentencizer, built once and rebuilt whenever its vocabulary
    holds more than VOCAB_LIMIT strings: spaCy keeps every new word it tokenizes (about 420
    bytes each, plus its tokenizer cache), so a stream of raw text would otherwise grow memory
    with its number of distinct words. Sentences hold plain strings, so a rebuild changes no
    output."""
    if not _default or len(_default[0].vocab.strings) > VOCAB_LIMIT:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        _default[:] = [nlp]
    return _default[0]


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


def read_text(path: str | Path, *, nlp=None, bad_lines: str | BadLines = "error") -> list[Sentence]:
    """Every non-blank line of a UTF-8 file, split into sentences (offsets relative to the line).
    The only bad line of raw text is one that is not UTF-8: `bad_lines` as in `read_conll`."""
    bad = BadLines.of(bad_lines)
    sentences = list(iter_text(path, nlp=nlp, bad_lines=bad))
    if not isinstance(bad_lines, BadLines):
        bad.finish()
    return sentences


def iter_text(path: str | Path, *, nlp=None, bad_lines: str | BadLines = "error") -> Iterator[Sentence]:
    """`read_text` as a stream: sentences line by line, for files too large to hold."""
    bad = BadLines.of(bad_lines)
    source = "<stdin>" if str(path) == STDIN else str(path)
    for number, text in iter_lines(path, bad):
        if isinstance(text, DataError):
            bad.drop([text], number)
        elif text.strip():
            yield from sentences_from_text(text, nlp=nlp, source=source, line=number)
