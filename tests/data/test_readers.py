"""Every reader on small files, and every kind of bad input: a DataError naming file and line."""

import logging

import pytest

from seqexit.data import DataError, read_conll, read_conllu, read_file, read_jsonl, read_text, sentences_from_text
from seqexit.output import write_conll, write_jsonl

CONLL2003 = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER

-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
"""

CONLLU = """\
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tknown\tknow\tVERB\tVBN\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    (path.write_bytes if mode == "wb" else path.write_text)(text)
    return path


def test_conll2003_style(tmp_path):
    path = write(tmp_path, "eng.train", CONLL2003)
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn", "Smith"], ["BRUSSELS"]]
    assert sentences[0].tags == ["B-ORG", "O", "B-MISC", "O"]
    assert sentences[1].tags == ["B-PER", "I-PER", "B-PER"]  # IOB1 B- after same type: a new entity
    assert sentences[1].lines == [8, 9, 10]
    assert [s.meta["doc"] for s in sentences] == [1, 1, 2]


def test_label_column_by_index_and_words_only(tmp_path):
    path = write(tmp_path, "eng.train", CONLL2003)
    chunks = read_conll(path, label_column=2)
    assert chunks[0].tags == ["B-NP", "B-VP", "B-NP", "I-NP"]
    pos = read_conll(path, label_column=1, scheme=None)
    assert pos[0].tags == ["NNP", "VBZ", "JJ", "NN"]
    assert read_conll(path, label_column=None)[0].tags is None


def test_tab_separated_tokens_may_hold_spaces(tmp_path):
    path = write(tmp_path, "x.tsv", "New York\tB-LOC\nis\tO\n")
    [sentence] = read_conll(path)
    assert sentence.words == ["New York", "is"] and sentence.tags == ["B-LOC", "O"]


def test_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = write(tmp_path, "x.conllu", CONLLU)
    first, second = read_conllu(path)
    assert first.words == ["I", "do", "n't", "know", "."]
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert first.meta["multiword"] == [(2, 3, "don't")] and first.meta["sent_id"] == "1"
    assert read_conllu(path, tag="xpos")[0].tags == ["PRP", "VBP", "RB", "VB", "."]
    assert second.words == ["Yes"] and second.lines == [11]


def test_jsonl(tmp_path):
    path = write(tmp_path, "x.jsonl", '{"tokens": ["John", "Smith"], "tags": ["B-PER", "E-PER"]}\n\n{"tokens": ["hi"], "tags": ["O"]}\n')
    first, second = read_jsonl(path)
    assert first.tags == ["B-PER", "I-PER"] and second.lines == [3]


def test_raw_text_sentences_and_offsets(tmp_path):
    path = write(tmp_path, "x.txt", "Angela Merkel met Macron. They talked.\n\nApple rose.\n")
    sentences = read_text(path)
    assert [s.words for s in sentences] == [["Angela", "Merkel", "met", "Macron", "."], ["They", "talked", "."], ["Apple", "rose", "."]]
    assert [s.lines[0] for s in sentences] == [1, 1, 3]
    text = "Angela Merkel met Macron. They talked."
    for sentence in sentences_from_text(text):
        assert [text[a:b] for a, b in sentence.meta["char_offsets"]] == sentence.words


def test_raw_text_never_yields_whitespace_words():
    text = "Hello   world.\t Next\u00a0one.  "
    sentences = sentences_from_text(text, source="s")
    assert [s.words for s in sentences] == [["Hello", "world", "."], ["Next", "one", "."]]
    assert all(w.strip() for s in sentences for w in s.words)
    assert [text[a:b] for s in sentences for a, b in s.meta["char_offsets"]] == [w for s in sentences for w in s.words]


def test_raw_text_with_a_pipeline_that_sets_no_boundaries_is_one_sentence():
    import spacy

    [sentence] = sentences_from_text("One here. Two here.", nlp=spacy.blank("en"))
    assert sentence.words == ["One", "here", ".", "Two", "here", "."]


def test_read_file_picks_the_reader(tmp_path):
    assert read_file(write(tmp_path, "a.conllu", CONLLU), span_tags=False)[0].tags[0] == "PRON"
    assert read_file(write(tmp_path, "a.txt", "Hello there.\n"), labelled=False)[0].words == ["Hello", "there", "."]
    with pytest.raises(ValueError, match="raw text carries no gold tags"):
        read_file(tmp_path / "a.txt", "text")


@pytest.mark.parametrize("scheme, expected", [
    ("iob1", "I-PER\tI-PER\tO\tI-LOC\tB-LOC"), ("iob2", "B-PER\tI-PER\tO\tB-LOC\tB-LOC"),
    ("iobes", "B-PER\tE-PER\tO\tS-LOC\tS-LOC"), ("bilou", "B-PER\tL-PER\tO\tU-LOC\tU-LOC"),
])
def test_writers_convert_to_the_scheme_asked_for(tmp_path, scheme, expected):
    from seqexit.data import Sentence

    sentence = Sentence(["John", "Smith", "in", "Paris", "Berlin"])
    write_conll([sentence], [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]], tmp_path / "out.conll", scheme=scheme)
    assert "\t".join(line.split("\t")[1] for line in (tmp_path / "out.conll").read_text().split("\n") if line) == expected
    write_jsonl([sentence], [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]], tmp_path / "out.jsonl", scheme=scheme)
    assert read_jsonl(tmp_path / "out.jsonl")[0].tags == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]


def test_writers_refuse_a_label_count_mismatch_and_write_nothing(tmp_path):
    from seqexit.data import Sentence

    sentences = [Sentence(["a"]), Sentence(["b", "c"], source="in.txt", lines=[7, 7])]
    for writer in (write_conll, write_jsonl):
        with pytest.raises(ValueError, match="in.txt:7: 2 words but 1 labels"):
            writer(sentences, [["O"], ["O"]], tmp_path / "x")
        assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="2 sentences but 1 extra"):
        write_jsonl(sentences, [["O"], ["O", "O"]], tmp_path / "x", extra=[{}])


def test_writers_pos_as_is_and_extra_fields(tmp_path):
    from seqexit.data import Sentence

    sentences = [Sentence(["I", "run"]), Sentence(["Go"])]
    write_conll(sentences, [["PRON", "VERB"], ["VERB"]], tmp_path / "pos.conll", scheme=None)
    back = read_conll(tmp_path / "pos.conll", scheme=None)
    assert [(s.words, s.tags) for s in back] == [(["I", "run"], ["PRON", "VERB"]), (["Go"], ["VERB"])]
    write_jsonl(sentences, [["PRON", "VERB"], ["VERB"]], tmp_path / "pos.jsonl", scheme=None, extra=[{"id": 1}, {"id": 2}])
    assert [s.meta for s in read_jsonl(tmp_path / "pos.jsonl", scheme=None)] == [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "iobes", "bilou", None])
def test_jsonl_round_trip_writer_to_reader(tmp_path, scheme):
    import json

    from seqexit.data import Sentence

    sentences = [Sentence(["John", "Smith", "in", "Paris", "Berlin"]), Sentence(["Hi", "you"]), Sentence(["Bonn"])]
    labels = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], ["O", "O"], ["B-LOC"]]
    write_jsonl(sentences, labels, tmp_path / "out.jsonl", scheme=scheme)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [set(row) for row in rows] == [{"tokens", "labels"}] * 3  # the one schema: no "tags"
    back = read_jsonl(tmp_path / "out.jsonl", scheme=scheme or "auto")
    assert [(s.words, s.tags) for s in back] == [(s.words, l) for s, l in zip(sentences, labels)]


def test_jsonl_reader_still_reads_tags_written_before(tmp_path):
    path = write(tmp_path, "old.jsonl", '{"tokens": ["John", "Smith"], "tags": ["B-PER", "I-PER"], "id": 3}\n')
    [sentence] = read_jsonl(path)
    assert sentence.words == ["John", "Smith"] and sentence.tags == ["B-PER", "I-PER"] and sentence.meta == {"id": 3}


@pytest.mark.parametrize(
    "name, content, kwargs, line, message",
    [
        ("cols.conll", "John NNP B-PER\nSmith B-PER\n", {}, 2, "expected 3 columns"),
        ("tag.conll", "John B-PER\nSmith X-PER\nsaid O\nin O\n", {}, 2, "unknown tag 'X-PER'"),
        ("iob2.conll", "John B-PER\nsaid O\n\nin O\nParis I-LOC\n", {"scheme": "iob2", "strict": True}, 5, "not valid IOB2"),
        ("utf8.conll", b"John B-PER\ncaf\xe9 O\n", {}, 2, "not valid UTF-8"),
        ("empty.conll", "\n\n", {}, None, "file is empty"),
        ("col.conll", "John B-PER\n", {"label_column": 4}, 1, "label column 4 does not exist"),
    ],
)
def test_bad_conll(tmp_path, name, content, kwargs, line, message):
    path = write(tmp_path, name, content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(DataError, match=message) as caught:
        read_conll(path, **kwargs)
    assert caught.value.path == str(path) and caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}:" if line else f"{path}:")


@pytest.mark.parametrize(
    "content, line, message",
    [
        ('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n', 2, "2 tokens but 1 tags"),
        ('{"tokens": ["a"]}\n{tokens: 1}\n', 2, "invalid JSON"),
        ('["a"]\n', 1, "JSON object"),
        ('{"tokens": ["a", ""]}\n', 1, "token 1 is empty"),
    ],
)
def test_bad_jsonl(tmp_path, content, line, message):
    path = write(tmp_path, "x.jsonl", content)
    with pytest.raises(DataError, match=message) as caught:
        read_jsonl(path)
    assert caught.value.line == line and str(caught.value).startswith(f"{path}:{line}:")


def test_bad_conllu(tmp_path):
    path = write(tmp_path, "x.conllu", "1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\n")
    with pytest.raises(DataError, match="10 tab-separated columns") as caught:
        read_conllu(path)
    assert caught.value.line == 1 and str(caught.value).startswith(f"{path}:1:")


def test_lenient_repair_keeps_every_token_and_warns(tmp_path, caplog):
    path = write(tmp_path, "x.conll", "John B-PER\nsaid O\n\nin O\nParis I-LOC\nnow O\n")
    with caplog.at_level(logging.WARNING):
        sentences = read_conll(path, scheme="iob2")
    assert [len(s) for s in sentences] == [2, 3]
    assert sentences[1].tags == ["O", "B-LOC", "O"]
    assert f"{path}:5" in caplog.text


def test_the_default_text_pipeline_is_rebuilt_before_its_vocabulary_grows_without_bound(monkeypatch):
    """spaCy keeps every new word it sees; the default pipeline is replaced past a limit, with
    the same words out."""
    from seqexit.data import text

    monkeypatch.setattr(text, "VOCAB_LIMIT", len(text.default_nlp().vocab.strings) + 50)
    first = text.default_nlp()
    words = [w for i in range(40) for w in sentences_from_text(f"Word{i} number {i * 7919} here.")[0].words]
    assert text.default_nlp() is not first  # the new strings pushed it past the limit
    again = [w for i in range(40) for w in sentences_from_text(f"Word{i} number {i * 7919} here.")[0].words]
    assert again == words and len(text.default_nlp().vocab.strings) <= text.VOCAB_LIMIT + 10
