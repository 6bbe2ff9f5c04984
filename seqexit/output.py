"""Every writer of labelled sentences: CoNLL columns, JSONL records, a spaCy DocBin or pretty text.

The last step of the flow (labels per word -> spans/tags -> a file). Two entry points:

* streaming writers of `TaggedSentence`s (what a `Tagger` returns), opened by `open_writer`:
  each `write` goes out at once, except the DocBin, which spaCy serialises whole at `close`;
* `write_conll` / `write_jsonl`: lists of `Sentence`s with a label list each (gold or predicted
  data, no exit information), checked whole before the first byte is written.

Either way, a writer to a path writes a temporary file beside it and renames it only when closed
without an error, so a failed run never leaves a half-written output behind; the file gets the
umask's mode.

Labels. seqexit holds span labels in IOB2. Writers convert span labels to the `scheme` asked for
(iob1, iob2, iobes, bilou; default iob2); per-word tags (POS: a model with no span scheme, or
`scheme=None` in `write_conll`/`write_jsonl`) are written as they are.

CoNLL: one `word<TAB>label` line per word, a blank line after each sentence.

JSONL: one JSON object per line, per sentence, UTF-8, keys in this order (`tagged_record`):

    tokens       list[str]   the words, as read or as split from raw text
    labels       list[str]   one label per token, in `scheme` for span tasks
    exit_layers  list[int]   per token, the 1-based encoder layer whose exit labelled it
    confidences  list[float] per token, the probability of its label at that exit, rounded to 4 places
    text         str         only for raw-text input: the sentence as it stood in the input
    entities     list[obj]   only for span tasks (NER, chunking); one object per span, in order:
        start       int      first token of the span (0-based)
        end         int      one past its last token (end exclusive: tokens[start:end])
        label       str      the span's type, without a B-/I- prefix (PER, NP, ...)
        text        str      the span's text: text[start_char:end_char] when the record has
                             `text`, else its tokens joined by single spaces
        start_char  int      only with `text`: the span's first character in `text`
        end_char    int      only with `text`: one past its last character (exclusive)

Labelled data without exit information (`write_jsonl`, `labelled_record`) writes only `tokens`
and `labels`, plus any extra fields given per sentence. `seqexit.data.read_jsonl` reads every
such file back: `tokens` and `labels` (also `words` and the older `tags`); the other keys land in
the sentence's `meta`. The Ray engine's rows (`seqexit.distributed.tag_dataset`) carry the same
`labels`, `exit_layers`, `confidences` (not rounded) and `entities` (start, end, label, text).

DocBin: see `DocBinWriter`. Pretty: see `PrettyWriter` (for people, not a contract).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .data import INTERNAL_SCHEME, Sentence, convert
from .files import umask_mode

if TYPE_CHECKING:  # the writers need no torch: the CLI reads OUTPUT_FORMATS before any model loads
    from .tagger import TaggedSentence

OUTPUT_FORMATS = ("conll", "jsonl", "spacy", "pretty")


def output_format_for(path: str | Path | None) -> str:
    """`.jsonl`/`.json` -> jsonl, `.spacy` -> spacy, anything else (and stdout) -> conll."""
    suffix = Path(path).suffix.lower() if path is not None else ""
    return {".jsonl": "jsonl", ".json": "jsonl", ".spacy": "spacy"}.get(suffix, "conll")


def labelled_record(words: Sequence[str], labels: Sequence[str]) -> dict:
    """The JSONL object of a labelled sentence without exit information: tokens and labels."""
    return {"tokens": list(words), "labels": list(labels)}


def tagged_record(tagged: TaggedSentence, *, scheme: str | None = INTERNAL_SCHEME) -> dict:
    """The JSONL object of one tagged sentence (a stable contract; the module docstring lists
    its keys): tokens, labels (span labels in `scheme`), exit_layers, confidences and, for span
    tasks, entities with token offsets (end exclusive). Raw-text input adds `text` (the sentence)
    and the entities' `start_char`/`end_char` in it."""
    record = labelled_record(tagged.words, _labels(tagged, scheme))
    record["exit_layers"] = tagged.exit_layers
    record["confidences"] = [round(c, 4) for c in tagged.confidence]
    meta = tagged.source.meta if tagged.source is not None else {}
    offsets = meta.get("char_offsets")
    if offsets:
        record["text"] = meta.get("text", "")
    if tagged.spans is not None:
        record["entities"] = entity_records(tagged, record.get("text"), offsets)
    return record


def entity_records(
    tagged: TaggedSentence, text: str | None = None, offsets: Sequence[tuple[int, int]] | None = None
) -> list[dict]:
    """`tagged`'s spans as `entities` objects: start, end (exclusive), label, text; with the
    sentence's `text` and its words' character `offsets` (from raw text), also start_char and
    end_char in `text`."""
    base = offsets[0][0] if offsets else 0
    entities = []
    for span in tagged.spans or []:
        entity = {"start": span.start, "end": span.end, "label": span.label,
                  "text": " ".join(tagged.words[span.start : span.end])}
        if offsets:
            entity["start_char"], entity["end_char"] = offsets[span.start][0] - base, offsets[span.end - 1][1] - base
            entity["text"] = (text or "")[entity["start_char"] : entity["end_char"]]
        entities.append(entity)
    return entities


def _in_scheme(labels: Sequence[str], scheme: str | None) -> list[str]:
    """IOB2 span labels in `scheme`; None: as they are."""
    return convert(labels, INTERNAL_SCHEME, scheme) if scheme else list(labels)


def _labels(tagged: TaggedSentence, scheme: str | None) -> list[str]:
    return _in_scheme(tagged.labels, scheme) if tagged.spans is not None else list(tagged.labels)


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
        """Finish and flush; to a path: rename the temporary file into place when `ok`, else
        delete it. A failure here too (a full disk at the last flush) deletes it and raises."""
        if self._temp is None:
            if ok:
                self.finish()
            self.stream.flush()
            return
        try:
            if ok:
                self.finish()
            self.stream.close()
            if ok:
                umask_mode(self._temp)
                os.replace(self._temp, self.path)
        except BaseException:
            ok = False
            raise
        finally:
            if not ok:
                try:
                    self.stream.close()
                except OSError:
                    pass
                self._temp.unlink(missing_ok=True)

    def __enter__(self) -> TaggedWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(ok=kind is None)


class ConllWriter(TaggedWriter):
    """`word<TAB>label` lines, a blank line after each sentence.

    keep_columns: write each input line with its columns and the prediction appended instead
    (sentences read with `keep_lines=True`: `seqexit.data.iter_conll`/`iter_conllu`; see
    `keep_columns_lines`)."""

    def __init__(self, out: str | Path | IO[str] | None, *, scheme: str | None = INTERNAL_SCHEME,
                 keep_columns: bool = False) -> None:
        super().__init__(out, scheme=scheme)
        self.keep_columns = keep_columns
        self._sentences = 0

    def write(self, tagged: TaggedSentence) -> None:
        labels = _labels(tagged, self.scheme)
        if not self.keep_columns:
            self.write_labels(tagged.words, labels)
            return
        raw = tagged.source.meta.get("raw") if tagged.source is not None else None
        if raw is None:
            where = tagged.source.where() if tagged.source is not None else "<input>"
            raise ValueError(f"{where}: keep_columns needs the input lines: read CoNLL or CoNLL-U with keep_lines=True")
        self.stream.write(keep_columns_lines(raw, labels, first=self._sentences == 0))
        self._sentences += 1

    def write_labels(self, words: Sequence[str], labels: Sequence[str]) -> None:
        """One sentence's words with the labels given, as they are."""
        self.stream.write("".join(f"{w}\t{t}\n" for w, t in zip(words, labels)) + "\n")


class JsonlWriter(TaggedWriter):
    """One `tagged_record` per line."""

    def write(self, tagged: TaggedSentence) -> None:
        self.write_record(tagged_record(tagged, scheme=self.scheme))

    def write_record(self, record: dict) -> None:
        """Any JSON object, as one line."""
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")


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


def keep_columns_lines(raw: dict, labels: Sequence[str], *, first: bool = True) -> str:
    """One sentence's input lines (`Sentence.meta["raw"]`) with the predicted `labels` added.

    CoNLL: every token line as read plus the prediction as a last column, joined by the file's
    own separator (tab, or a space for space-separated files): `word ... gold pred`, what
    conlleval reads. -DOCSTART- lines get their own last column repeated (`-DOCSTART- -X- -X- O
    O`), so every line has as many columns and conlleval counts them as O; blank lines stay
    blank; one blank line follows each sentence (the input's blank after the previous sentence
    is that one unless `first`).
    CoNLL-U: the sentence's comment and token lines as read, each word's MISC field gaining
    `SeqexitLabel=PRED` (`_` replaced, else appended after a `|`), so the output stays valid
    CoNLL-U with the gold UPOS/XPOS intact; then a blank line."""
    if raw["format"] == "conllu":
        lines = list(raw["lines"])
        for index, label in zip(raw["words"], labels):
            columns = lines[index].split("\t")
            misc = columns[9]
            columns[9] = f"SeqexitLabel={label}" if misc in ("", "_") else f"{misc}|SeqexitLabel={label}"
            lines[index] = "\t".join(columns)
        return "".join(f"{line}\n" for line in lines) + "\n"
    separator, before = raw["separator"], list(raw["before"])
    if not first and before and not before[0].strip():
        before = before[1:]
    out = [line.rstrip() + separator + _docstart_label(line) if line.strip() else "" for line in before]
    out += [line.rstrip() + separator + label for line, label in zip(raw["tokens"], labels)]
    return "".join(f"{line}\n" for line in out) + "\n"


def _docstart_label(line: str) -> str:
    """A -DOCSTART- line's prediction: its own last column (O in CoNLL-2003), or O if it has one."""
    columns = line.split()
    return columns[-1] if len(columns) > 1 else "O"


def _spaces(tagged: TaggedSentence) -> list[bool]:
    """Whether each word is followed by a space: from raw text's offsets, else every word but the last."""
    offsets = tagged.source.meta.get("char_offsets") if tagged.source is not None else None
    if offsets:
        return [end < next_start for (_, end), (next_start, _) in zip(offsets, offsets[1:])] + [False]
    return [True] * (len(tagged.words) - 1) + [False]


def open_writer(
    out: str | Path | IO[str] | None, format: str = "auto", *, scheme: str | None = INTERNAL_SCHEME, task: str = "ner",
    keep_columns: bool = False,
) -> TaggedWriter:
    """A writer for `format` (auto: from the output file's extension; stdout: CoNLL);
    keep_columns: CoNLL only, see `ConllWriter`."""
    if format == "auto":
        format = output_format_for(out if isinstance(out, (str, Path)) else None)
    if format == "conll":
        return ConllWriter(out, scheme=scheme, keep_columns=keep_columns)
    if keep_columns:
        raise ValueError(f"keep_columns writes CoNLL columns, not {format}")
    if format == "jsonl":
        return JsonlWriter(out, scheme=scheme)
    if format == "spacy":
        return DocBinWriter(out, scheme=scheme, task=task)
    if format == "pretty":
        return PrettyWriter(out, scheme=scheme)
    raise ValueError(f"unknown output format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")


def write_conll(
    sentences: Sequence[Sentence], labels: Sequence[Sequence[str]], out: str | Path | IO[str], *,
    scheme: str | None = INTERNAL_SCHEME,
) -> None:
    """`word<TAB>label` lines, a blank line after each sentence. scheme=None writes labels as
    they are (POS); otherwise IOB2 labels are converted to `scheme`."""
    pairs = _checked(sentences, labels, scheme)
    with ConllWriter(out) as writer:
        for sentence, tags in pairs:
            writer.write_labels(sentence.words, tags)


def write_jsonl(
    sentences: Sequence[Sentence],
    labels: Sequence[Sequence[str]],
    out: str | Path | IO[str],
    *,
    scheme: str | None = INTERNAL_SCHEME,
    extra: Sequence[dict] | None = None,
) -> None:
    """One `{"tokens", "labels", **extra[i]}` object per line (`labelled_record`); labels
    converted as in `write_conll`."""
    if extra is not None and len(extra) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(extra)} extra field dicts")
    pairs = _checked(sentences, labels, scheme)
    with JsonlWriter(out) as writer:
        for i, (sentence, tags) in enumerate(pairs):
            writer.write_record({**labelled_record(sentence.words, tags), **(extra[i] if extra else {})})


def _checked(
    sentences: Sequence[Sentence], labels: Sequence[Sequence[str]], scheme: str | None
) -> list[tuple[Sentence, list[str]]]:
    """Pair each sentence with its labels in the output scheme; every check runs before any
    byte is written, so a refused call leaves no file behind."""
    if len(sentences) != len(labels):
        raise ValueError(f"{len(sentences)} sentences but {len(labels)} label lists")
    pairs = []
    for sentence, tags in zip(sentences, labels):
        if len(tags) != len(sentence.words):
            raise ValueError(f"{sentence.where()}: {len(sentence.words)} words but {len(tags)} labels")
        pairs.append((sentence, _in_scheme(tags, scheme)))
    return pairs
