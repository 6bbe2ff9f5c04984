"""Issue 21: a JSONL object without tokens, empty files, and the bad-line policy of the readers
(`bad_lines="error"|"warn"|"skip"`): a bad line's sentence is dropped and reported, never silently."""

from __future__ import annotations

import pytest

from seqexit.data import DataError, read_conll, read_conllu, read_file, read_jsonl
from seqexit.data.errors import BadLines
from seqexit.data.formats import iter_words
from seqexit.data.stats import corpus_stats

# line 5 is `\tO`: an empty token (the issue's real-corpus case)
CONLL = "John\tB-PER\nSmith\tI-PER\n\nParis\tB-LOC\n\tO\nis\tO\n\nbig\tO\n"
CONLLU = (
    "1\tHe\the\tPRON\t_\t_\t0\troot\t_\t_\n\n"
    "1\tsaid\tsay\tVERB\t_\t_\t0\troot\t_\t_\n3\tit\tit\tPRON\t_\t_\t2\tobj\t_\t_\n\n"  # line 4: ID out of order
    "1\tParis\tParis\tPROPN\t_\t_\t0\troot\t_\t_\n"
)
JSONL = '{"tokens": ["a"], "labels": ["O"]}\n{"foo": 1}\n{"tokens": ["b", "c"], "labels": ["O", "B-PER"]}\n'


def write(tmp_path, name, content):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


# --- item 2: an object with no tokens is a file:line error -----------------------------------

@pytest.mark.parametrize("row", ['{"foo": 1}', '{}', '{"labels": ["O"]}', '{"text": 3, "id": 1}'])
def test_jsonl_object_without_tokens_is_a_file_line_error(tmp_path, row):
    path = write(tmp_path, "x.jsonl", '{"tokens": ["a"]}\n' + row + "\n")
    for read in (read_jsonl, lambda p: list(iter_words(p))):
        with pytest.raises(DataError, match="no 'tokens'") as caught:
            read(path)
        assert str(caught.value).startswith(f"{path}:2: ")


# --- item 3: empty files ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["e.txt", "e.conll", "e.conllu", "e.jsonl"])
def test_tagging_an_empty_file_yields_nothing_with_a_warning(tmp_path, capsys, name):
    path = write(tmp_path, name, "\n \n")
    assert list(iter_words(path)) == []
    assert f"{path}: file is empty" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["e.conll", "e.conllu", "e.jsonl"])
def test_labelled_reading_of_an_empty_file_is_still_an_error(tmp_path, name):
    path = write(tmp_path, name, "")
    with pytest.raises(DataError, match="file is empty"):
        read_file(path)


def test_stats_of_an_empty_file_are_zeros(tmp_path):
    stats = corpus_stats(write(tmp_path, "e.conll", ""))
    assert (stats.sentences, stats.tokens, stats.labels, stats.entities, stats.scheme) == (0, 0, {}, {}, None)


# --- item 4: the bad-line policy -------------------------------------------------------------

def test_error_is_the_default_and_stops_at_the_bad_line(tmp_path):
    path = write(tmp_path, "x.conll", CONLL)
    for kwargs in ({}, {"bad_lines": "error"}):
        with pytest.raises(DataError, match="empty token") as caught:
            read_conll(path, **kwargs)
        assert caught.value.line == 5


def test_warn_drops_the_whole_sentence_and_lists_each_line_and_the_count(tmp_path, capsys):
    path = write(tmp_path, "x.conll", CONLL)
    sentences = read_conll(path, bad_lines="warn")
    assert [s.words for s in sentences] == [["John", "Smith"], ["big"]]
    assert [s.lines for s in sentences] == [[1, 2], [8]]
    err = capsys.readouterr().err
    assert f"{path}:5: empty token" in err and "lines 4-6" in err
    assert "skipped 1 bad line(s) and their 1 sentence(s)" in err


def test_skip_reports_every_line_and_the_count_at_the_end(tmp_path, capsys):
    path = write(tmp_path, "x.conll", CONLL + "\nx\ty\tz\n")
    bad = BadLines("skip")
    sentences = read_conll(path, bad_lines=bad)
    assert [s.words for s in sentences] == [["John", "Smith"], ["big"]]
    assert capsys.readouterr().err == ""  # nothing while reading
    bad.finish()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and f"{path}:5: empty token" in lines[0] and "skipped 2 bad line(s)" in lines[2]


def test_every_bad_line_of_a_sentence_is_reported(tmp_path):
    path = write(tmp_path, "x.conll", "a\tO\n\tO\nb c\tO\n\tO\n\nd\tO\n")
    bad = BadLines("skip")
    assert [s.words for s in read_conll(path, bad_lines=bad)] == [["d"]]
    assert [m.split(": ")[0] for m in bad.skipped] == [f"{path}:2", f"{path}:4"]
    assert bad.sentences == 1


def test_conllu_bad_line_drops_its_sentence(tmp_path, capsys):
    path = write(tmp_path, "x.conllu", CONLLU)
    with pytest.raises(DataError, match="out of order"):
        read_conllu(path)
    assert [s.words for s in read_conllu(path, bad_lines="warn")] == [["He"], ["Paris"]]
    assert f"{path}:4: word ID 3 out of order" in capsys.readouterr().err


def test_jsonl_bad_line_is_its_sentence(tmp_path, capsys):
    path = write(tmp_path, "x.jsonl", JSONL)
    sentences = read_jsonl(path, bad_lines="warn")
    assert [s.words for s in sentences] == [["a"], ["b", "c"]] and sentences[1].tags == ["O", "B-PER"]
    assert f"{path}:2: no 'tokens'" in capsys.readouterr().err


def test_non_utf8_line_drops_its_sentence(tmp_path, capsys):
    path = write(tmp_path, "x.conll", b"a\tO\n\ncaf\xe9\tO\nb\tO\n\nc\tO\n")
    assert [s.words for s in read_conll(path, bad_lines="warn")] == [["a"], ["c"]]
    assert f"{path}:3: not valid UTF-8" in capsys.readouterr().err
    text = write(tmp_path, "x.txt", b"one.\ncaf\xe9\ntwo.\n")
    assert [s.words for s in iter_words(text, bad_lines="warn")] == [["one", "."], ["two", "."]]


def test_unknown_and_non_span_tags_drop_their_sentence_through_read_file(tmp_path, capsys):
    path = write(tmp_path, "x.conll", "a\tB-PER\n\nb\tX-PER\n\nc\tNNP\n\nd\tO\n")
    with pytest.raises(DataError, match="unknown tag"):
        read_file(path)
    sentences = read_file(path, bad_lines="warn")
    assert [s.words for s in sentences] == [["a"], ["d"]]
    err = capsys.readouterr().err
    assert f"{path}:3: unknown tag 'X-PER'" in err and "skipped 2 bad line(s)" in err


def test_a_file_of_bad_lines_only_is_still_an_error_for_labelled_reading(tmp_path):
    path = write(tmp_path, "x.conll", "\tO\n")
    with pytest.raises(DataError, match=r"no sentences found: every sentence had a bad line \(1 skipped; the first: .*:1: empty token"):
        read_file(path, bad_lines="skip")


def test_stats_counts_only_the_kept_sentences(tmp_path, capsys):
    stats = corpus_stats(write(tmp_path, "x.conll", CONLL), bad_lines="warn")
    assert (stats.sentences, stats.tokens) == (2, 3)
    assert "skipped 1 bad line(s)" in capsys.readouterr().err


def test_tagging_stream_skips_whole_sentences_only(tmp_path, capsys):
    path = write(tmp_path, "x.conll", CONLL)
    assert [s.words for s in iter_words(path, bad_lines="warn")] == [["John", "Smith"], ["big"]]
    assert "lines 4-6" in capsys.readouterr().err


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="error, skip, warn"):
        BadLines("ignore")


def test_a_token_that_only_starts_like_docstart_is_kept(tmp_path):
    path = write(tmp_path, "x.conll", "-DOCSTART- -X- O\n\n-DOCSTART-x\tO\nb\tO\n")
    assert [s.words for s in read_conll(path)] == [["-DOCSTART-x", "b"]]
