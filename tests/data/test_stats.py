"""`corpus_stats`: counts, the scheme as written, and every scheme problem at its line."""

import json

import pytest

from seqexit.data import CorpusStats, DataError, corpus_stats

IOB2 = """\
-DOCSTART- -X- O

John NNP B-PER
Smith NNP I-PER
visited VBD O
New NNP B-LOC
York NNP I-LOC

Mary NNP B-PER
left VBD O
"""

IOB1 = """\
John I-PER
Smith I-PER
met O
Mary I-PER
in O
Paris I-LOC

EU I-ORG
and O
UN I-ORG
"""

IOBES = """\
John B-PER
Smith E-PER
in O
Paris S-LOC

the O
United B-ORG
Nations I-ORG
Council E-ORG
"""

CONLLU = """\
# sent_id = 1
# text = John said it
1\tJohn\tJohn\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tsaid\tsay\tVERB\tVBD\t_\t0\troot\t_\t_
3\tit\tit\tPRON\tPRP\t_\t2\tobj\t_\t_

1\tParis\tParis\tPROPN\tNNP\t_\t0\troot\t_\t_
"""


def stats_of(tmp_path, name: str, text: str, **kwargs) -> CorpusStats:
    path = tmp_path / name
    path.write_text(text)
    return corpus_stats(path, **kwargs)


def test_counts_of_a_two_sentence_conll_file(tmp_path):
    stats = stats_of(tmp_path, "train.conll", IOB2)
    assert (stats.sentences, stats.tokens) == (2, 7)
    assert stats.labels == {"O": 2, "B-PER": 2, "I-LOC": 1, "B-LOC": 1, "I-PER": 1}
    assert list(stats.labels) == ["B-PER", "O", "B-LOC", "I-LOC", "I-PER"], "by count, then name"
    assert stats.entities == {"PER": 2, "LOC": 1}
    assert stats.scheme == "iob2"
    assert stats.problems == []


def test_iob1_keeps_the_labels_as_written(tmp_path):
    stats = stats_of(tmp_path, "eng.train", IOB1)
    assert stats.scheme == "iob1"
    assert set(stats.labels) == {"I-PER", "I-LOC", "I-ORG", "O"}, "not converted to B-"
    assert stats.entities == {"ORG": 2, "PER": 2, "LOC": 1}
    assert stats.problems == []


def test_every_iob2_violation_is_listed_at_its_line(tmp_path):
    text = "John B-PER\nsaid O\nSmith I-PER\n\nin O\nBerlin I-LOC\n\nMary B-PER\nleft O\nRome B-LOC\n"
    stats = stats_of(tmp_path, "bad.conll", text)
    assert stats.scheme == "iob2"
    assert [p.line for p in stats.problems] == [3, 6]
    assert "'I-PER' is not valid IOB2 after 'O'" in stats.problems[0].message
    assert "'I-LOC' is not valid IOB2 after 'O'" in stats.problems[1].message
    assert stats.entities == {"PER": 3, "LOC": 2}, "read leniently, as conlleval does"


def test_unknown_tags_are_problems_and_do_not_hide_later_ones(tmp_path):
    text = "John B-PER\nSmith X-PER\nsaid O\nhe I-PER\n"
    stats = stats_of(tmp_path, "bad.conll", text)
    assert stats.scheme == "iob2"
    assert [p.line for p in stats.problems] == [2, 4]
    assert "unknown tag 'X-PER'" in stats.problems[0].message
    assert stats.labels["X-PER"] == 1


def test_iobes(tmp_path):
    stats = stats_of(tmp_path, "train.iobes", IOBES)
    assert stats.scheme == "iobes"
    assert stats.entities == {"LOC": 1, "ORG": 1, "PER": 1}
    assert stats.labels["E-PER"] == 1 and "I-PER" not in stats.labels
    assert stats.problems == []


def test_iobes_end_without_begin_is_a_problem(tmp_path):
    stats = stats_of(tmp_path, "bad.iobes", "in O\nParis S-LOC\nCity E-LOC\n")
    assert stats.scheme == "iobes"
    assert [p.line for p in stats.problems] == [3]
    assert "'E-LOC' is not valid IOBES after 'S-LOC'" in stats.problems[0].message


def test_pos_conllu_has_no_scheme_and_no_entities(tmp_path):
    stats = stats_of(tmp_path, "ud.conllu", CONLLU)
    assert (stats.sentences, stats.tokens) == (2, 4)
    assert stats.scheme is None
    assert stats.entities == {} and stats.problems == []
    assert stats.labels == {"PROPN": 2, "PRON": 1, "VERB": 1}
    xpos = stats_of(tmp_path, "ud.conllu", CONLLU, upos=False)
    assert xpos.labels == {"NNP": 2, "PRP": 1, "VBD": 1}


def test_jsonl_input(tmp_path):
    rows = [{"tokens": ["John", "Smith", "left"], "tags": ["B-PER", "I-PER", "O"]},
            {"tokens": ["in", "Paris"], "tags": ["O", "I-LOC"]}]
    stats = stats_of(tmp_path, "data.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert (stats.sentences, stats.tokens, stats.scheme) == (2, 5, "iob2")
    assert [p.line for p in stats.problems] == [2]
    assert stats.entities == {"LOC": 1, "PER": 1}


def test_label_column_picks_the_tags(tmp_path):
    stats = stats_of(tmp_path, "chunks.conll", "John B-NP B-PER\nleft B-VP O\n", label_column=1)
    assert stats.labels == {"B-NP": 1, "B-VP": 1}
    assert stats.entities == {"NP": 1, "VP": 1}


def test_to_dict_is_json_ready(tmp_path):
    stats = stats_of(tmp_path, "bad.conll", "John B-PER\nsaid O\nSmith I-PER\n")
    payload = json.loads(json.dumps(stats.to_dict()))
    assert set(payload) == {"sentences", "tokens", "labels", "entities", "scheme", "problems"}
    assert payload["problems"] == [{"line": 3, "message": stats.problems[0].message}]


@pytest.mark.parametrize("name, text, line", [
    ("bad.conll", "John B-PER\nSmith I-PER extra\n", 2),
    ("bad.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [\n', 2),
    ("bad.conllu", "1\tJohn\tJohn\tPROPN\n", 1),
])
def test_unparseable_files_raise_data_error_with_the_line(tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as err:
        corpus_stats(path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_unlabelled_jsonl_is_refused(tmp_path):
    path = tmp_path / "words.jsonl"
    path.write_text('{"tokens": ["a", "b"]}\n')
    with pytest.raises(DataError, match="no tags"):
        corpus_stats(path)


def test_unknown_format_is_a_value_error(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text(IOB2)
    with pytest.raises(ValueError, match="unknown format 'text'"):
        corpus_stats(path, "text")
