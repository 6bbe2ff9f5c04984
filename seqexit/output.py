"""Tagged sentences -> files: CoNLL columns, JSONL records or a spaCy DocBin, one sentence at a time.

The last step of the flow (labels per word -> spans/tags -> a file). Writers stream: each
`write` goes out at once, except the DocBin, which spaCy serialises whole at `close`. A writer to
a path writes a temporary file beside it and renames it only when closed without an error, so a
failed run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO

from .data import INTERNAL_SCHEME, convert
from .data.writers import conll_block
from .files import umask_mode
from .tagger import TaggedSentence

OUTPUT_FORMATS = ("conll", "jsonl", "spacy", "pretty")


def output_format_for(path: str | Path | None) -> str:
    """`.jsonl`/`.json` -> jsonl, `.spacy` -> spacy, anything else (and stdout) -> conll."""
    suffix = Path(path).suffix.lower() if path is not None else ""
    return {".jsonl": "jsonl", ".json": "jsonl", ".spacy": "spacy"}.get(suffix, "conll")


def tagged_record(tagged: TaggedSentence, *, scheme: str | None = INTERNAL_SCHEME) -> dict:
    """The JSONL object of one sentence (a stable contract): tokens, labels (span labels in
    `scheme`), exit_layers, confidences and, for span tasks, entities with token offsets (end
    exclusive). Raw-text input adds `text` (the sentence) and the entities' `start_char`/`end_char`
    in it."""
    record = {
        "tokens": tagged.words,
        "labels": _labels(tagged, scheme),
        "exit_layers": tagged.exit_layers,
        "confidences": [round(c, 4) for c in tagged.confidence],
    }
    meta = tagged.source.meta if tagged.source is not None else {}
    offsets = meta.get("char_offsets")
    if offsets:
        record["text"] = meta.get("text", "")
    if tagged.spans is not None:
        base = offsets[0][0] if offsets else 0
        entities = []
        for span in tagged.spans:
            entity = {"start": span.start, "end": span.end, "label": span.label,
                      "text": " ".join(tagged.words[span.start : span.end])}
            if offsets:
                entity["start_char"], entity["end_char"] = offsets[span.start][0] - base, offsets[span.end - 1][1] - base
                entity["text"] = record["text"][entity["start_char"] : entity["end_char"]]
            entities.append(entity)
        record["entities"] = entities
    return record


def _labels(tagged: TaggedSentence, scheme: str | None) -> list[str]:
    if tagged.spans is None or scheme is None:
        return list(tagged.labels)
    return convert(tagged.labels, INTERNAL_SCHEME, scheme)


class TaggedWriter:
    """Write `TaggedSentence`s to a path (atomically) or a text stream; use as a context manager."""

    binary = False

    def __init__(self, out: str | Path | IO[str] | None, *, scheme: str | None = INTERNAL_SCHEME) -> None:
        self.scheme = scheme
        self.path = Path(out) if isinstance(out, (str, Path)) else None
        self._temp: Path | None = None
        if self.path is not None:
            if self.path.is_dir():
                raise IsADirectoryError(f"{self.path}: is a folder, not an output file")
            if not self.path.parent.is_dir():
                raise FileNotFoundError(f"{self.path}: its folder does not exist")
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            self._temp = Path(name)
            self.stream = os.fdopen(handle, "wb" if self.binary else "w", encoding=None if self.binary else "utf-8")
        else:
            self.stream = out if out is not None else sys.stdout

    def write(self, tagged: TaggedSentence) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Anything a format writes once, at the end."""

    def close(self, ok: bool = True) -> None:
        if ok:
            self.finish()
        if self._temp is None:
            self.stream.flush()
            return
        self.stream.close()
        if ok:
            umask_mode(self._temp)
            os.replace(self._temp, self.path)
        else:
            self._temp.unlink(missing_ok=True)

    def __enter__(self) -> TaggedWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(ok=kind is None)


class ConllWriter(TaggedWriter):
    """`word<TAB>label` lines, a blank line after each sentence."""

    def write(self, tagged: TaggedSentence) -> None:
        self.stream.write(conll_block(tagged.words, _labels(tagged, self.scheme)))


class JsonlWriter(TaggedWriter):
    """One `tagged_record` per line."""

    def write(self, tagged: TaggedSentence) -> None:
        self.stream.write(json.dumps(tagged_record(tagged, scheme=self.scheme), ensure_ascii=False) + "\n")


class DocBinWriter(TaggedWriter):
    """A spaCy DocBin: entities in `doc.ents` (NER) or `doc.spans["chunks"]` (chunking), POS
    labels in `token.tag_` (and `token.pos_` when they are Universal POS tags); every token's
    exit layer and confidence in `doc.user_data["seqexit"]`."""

    binary = True

    def __init__(self, out: str | Path | None, *, scheme: str | None = INTERNAL_SCHEME, task: str = "ner") -> None:
        if out is None or not isinstance(out, (str, Path)):
            raise ValueError("the spacy (DocBin) format is binary: give an output file with -o OUT.spacy")
        super().__init__(out, scheme=scheme)
        import spacy
        from spacy.parts_of_speech import IDS
        from spacy.tokens import DocBin

        self.task = task
        self.vocab = spacy.blank("xx").vocab
        self.universal = set(IDS)
        self.docs = DocBin(store_user_data=True)

    def write(self, tagged: TaggedSentence) -> None:
        from spacy.tokens import Doc, Span

        doc = Doc(self.vocab, words=tagged.words, spaces=_spaces(tagged))
        if tagged.spans is None:
            for token, label in zip(doc, tagged.labels):
                token.tag_ = label
                if label in self.universal:
                    token.pos_ = label
        else:
            spans = [Span(doc, s.start, s.end, label=s.label) for s in tagged.spans]
            if self.task == "ner":
                doc.ents = spans
            else:
                doc.spans["chunks"] = spans
        doc.user_data["seqexit"] = {"exit_layers": tagged.exit_layers, "confidences": tagged.confidence}
        self.docs.add(doc)

    def finish(self) -> None:
        self.stream.write(self.docs.to_bytes())


class PrettyWriter(TaggedWriter):
    """For people: each sentence, then its entities one per line (`  LABEL  text`); for per-word
    tags (POS) the sentence as `word/TAG` pairs."""

    def write(self, tagged: TaggedSentence) -> None:
        if tagged.spans is None:
            self.stream.write(" ".join(f"{w}/{t}" for w, t in zip(tagged.words, tagged.labels)) + "\n\n")
            return
        record = tagged_record(tagged)
        lines = [record.get("text") or " ".join(tagged.words)]
        width = max((len(e["label"]) for e in record["entities"]), default=0)
        lines += [f"  {e['label']:<{width}}  {e['text']}" for e in record["entities"]]
        self.stream.write("\n".join(lines) + "\n\n")


def _spaces(tagged: TaggedSentence) -> list[bool]:
    """Whether each word is followed by a space: from raw text's offsets, else every word but the last."""
    offsets = tagged.source.meta.get("char_offsets") if tagged.source is not None else None
    if offsets:
        return [end < next_start for (_, end), (next_start, _) in zip(offsets, offsets[1:])] + [False]
    return [True] * (len(tagged.words) - 1) + [False]


def open_writer(
    out: str | Path | IO[str] | None, format: str = "auto", *, scheme: str | None = INTERNAL_SCHEME, task: str = "ner"
) -> TaggedWriter:
    """A writer for `format` (auto: from the output file's extension; stdout: CoNLL)."""
    if format == "auto":
        format = output_format_for(out if isinstance(out, (str, Path)) else None)
    if format == "conll":
        return ConllWriter(out, scheme=scheme)
    if format == "jsonl":
        return JsonlWriter(out, scheme=scheme)
    if format == "spacy":
        return DocBinWriter(out, scheme=scheme, task=task)
    if format == "pretty":
        return PrettyWriter(out, scheme=scheme)
    raise ValueError(f"unknown output format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
