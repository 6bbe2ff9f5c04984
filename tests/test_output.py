"""`seqexit.output`: the one JSONL schema, written by the streaming writers and read back by `read_jsonl`."""

import io
import json

import pytest

from seqexit.data import Sentence, Span, read_jsonl, sentences_from_text
from seqexit.output import (
    JsonlWriter, entity_records, labelled_record, open_writer, tagged_record, write_conll, write_jsonl,
)
from seqexit.tagger import TaggedSentence


def tagged(words, labels, spans, source=None):
    n = len(words)
    return TaggedSentence(list(words), list(labels), [0.912345] * n, [2] * n, spans, source or Sentence(list(words)))


def test_tagged_record_keys_in_order_and_entities():
    record = tagged_record(tagged(["John", "Smith", "left"], ["B-PER", "I-PER", "O"], [Span("PER", 0, 2)]), scheme="iobes")
    assert list(record) == ["tokens", "labels", "exit_layers", "confidences", "entities"]
    assert record["labels"] == ["B-PER", "E-PER", "O"] and record["confidences"] == [0.9123] * 3
    assert record["entities"] == [{"start": 0, "end": 2, "label": "PER", "text": "John Smith"}]
    pos = tagged_record(tagged(["I", "run"], ["PRON", "VERB"], None), scheme="iobes")
    assert list(pos) == ["tokens", "labels", "exit_layers", "confidences"] and pos["labels"] == ["PRON", "VERB"]
    assert labelled_record(("a",), ("O",)) == {"tokens": ["a"], "labels": ["O"]}


def test_raw_text_records_carry_the_text_and_character_offsets():
    text = "Intro.  New   York is big."
    sentence = sentences_from_text(text)[1]
    result = tagged(sentence.words, ["B-LOC", "I-LOC", "O", "O", "O"], [Span("LOC", 0, 2)], sentence)
    record = tagged_record(result)
    assert list(record) == ["tokens", "labels", "exit_layers", "confidences", "text", "entities"]
    [entity] = record["entities"]
    assert record["text"][entity["start_char"]:entity["end_char"]] == entity["text"] == "New   York"
    assert entity_records(result) == [{"start": 0, "end": 2, "label": "LOC", "text": "New York"}]


@pytest.mark.parametrize("scheme", ["iob2", "iobes", "bilou"])
def test_streaming_jsonl_round_trip(tmp_path, scheme):
    results = [tagged(["John", "Smith", "in", "Paris"], ["B-PER", "I-PER", "O", "B-LOC"], [Span("PER", 0, 2), Span("LOC", 3, 4)]),
               tagged(["Bonn"], ["B-LOC"], [Span("LOC", 0, 1)])]
    with open_writer(tmp_path / "out.jsonl", scheme=scheme) as writer:
        assert isinstance(writer, JsonlWriter)
        for result in results:
            writer.write(result)
    back = read_jsonl(tmp_path / "out.jsonl", scheme=scheme)
    assert [(s.words, s.tags) for s in back] == [(r.words, r.labels) for r in results]
    assert back[0].meta["exit_layers"] == [2] * 4 and len(back[0].meta["entities"]) == 2


def test_a_failed_write_leaves_no_file_and_a_stream_gets_the_lines(tmp_path):
    sentences = [Sentence(["a", "b"])]
    with pytest.raises(TypeError):
        write_jsonl(sentences, [["O", "O"]], tmp_path / "x.jsonl", extra=[{"bad": object()}])
    assert list(tmp_path.iterdir()) == []
    stream = io.StringIO()
    write_jsonl(sentences, [["O", "O"]], stream, extra=[{"id": 7}])
    write_conll(sentences, [["O", "O"]], stream)
    first, *rest = stream.getvalue().split("\n", 1)
    assert json.loads(first) == {"tokens": ["a", "b"], "labels": ["O", "O"], "id": 7}
    assert rest == ["a\tO\nb\tO\n\n"]
