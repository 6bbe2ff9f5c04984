"""Property-based tests (Hypothesis): the readers on arbitrary token strings, and the engine on a
tiny random model for arbitrary sentences, lengths and batch sizes.

Readers: a token written as CoNLL or JSONL comes back (CoNLL: without surrounding whitespace,
which a column cannot hold) or the read fails with a `DataError` naming file and line: never
another exception, never a silently dropped or altered token.
Engine: every word gets exactly one label, in order, and a sentence's labels and exit layers do
not depend on the batch it is tagged in or the batch size (full depth and TOKEE).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqexit import ExitPolicy, Tagger
from seqexit.data import DataError, read_conll, read_jsonl
from seqexit.data.formats import iter_words

from tests.conftest import WORDS

QUICK = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Arbitrary strings, with the awkward cases drawn more often than chance would draw them.
AWKWARD = st.sampled_from(["", " ", "\t", "\u00a0", "\u3000", "\x00", "\x1c", "\x85", "\u2028", "\r", "\ufeff",
                           "e\u0301", "\u0301", "\u200b", "👍🏽", "🇩🇪", "👨‍👩‍👧", "a" * 3000, "-DOCSTART-x", "{", '"', "\\"])
TOKEN = st.one_of(st.text(max_size=20), AWKWARD, st.text(min_size=200, max_size=600))


FILES = tempfile.TemporaryDirectory(prefix="seqexit-properties-")  # one folder, removed at exit


def temp_file(name: str, text: str) -> Path:
    """`text` in FILES/name (each example overwrites the last: examples run one at a time)."""
    path = Path(FILES.name) / name
    path.write_text(text, encoding="utf-8")
    return path


@QUICK
@given(st.lists(st.lists(TOKEN, min_size=1, max_size=6), min_size=1, max_size=5))
def test_jsonl_round_trip_keeps_every_token_or_names_the_line(sentences):
    path = temp_file("x.jsonl", "".join(json.dumps({"tokens": s}, ensure_ascii=False) + "\n" for s in sentences))
    first_bad = next((n for n, s in enumerate(sentences, 1) if any(not t.strip() for t in s)), None)
    try:
        read = read_jsonl(path, scheme=None)
    except DataError as err:
        assert first_bad is not None and err.line == first_bad and str(err).startswith(f"{path}:{first_bad}: ")
        return
    assert first_bad is None
    assert [s.words for s in read] == sentences


@QUICK
@given(st.lists(st.lists(TOKEN, min_size=1, max_size=6), min_size=1, max_size=5),
       st.sampled_from(["warn", "skip"]))
def test_jsonl_bad_line_policy_drops_exactly_the_bad_sentences(sentences, policy):
    path = temp_file("x.jsonl", "".join(json.dumps({"tokens": s}, ensure_ascii=False) + "\n" for s in sentences))
    good = [s for s in sentences if all(t.strip() for t in s)]
    assume(good)
    assert [s.words for s in iter_words(path, bad_lines=policy)] == good


def conll_token(token: str) -> bool:
    """A token one CoNLL column can hold: no line break or tab, not the document marker."""
    return "\n" not in token and "\t" not in token and token.strip() != "-DOCSTART-"


# line breaks and tabs mapped away rather than filtered: a filter rejected too many long tokens
# for Hypothesis's health check on some seeds
CONLL_TOKEN = TOKEN.map(lambda t: t.replace("\n", " ").replace("\t", " ")).filter(conll_token)


@QUICK
@given(st.lists(st.lists(CONLL_TOKEN, min_size=1, max_size=6), min_size=1, max_size=5))
def test_conll_round_trip_keeps_every_token_or_names_the_line(sentences):
    lines, expected_bad = [""], []  # a blank first line: a BOM opening line 1 is an encoding mark, not text
    for sentence in sentences:
        for token in sentence:
            lines.append(f"{token}\tO")
            if not token.strip() and not expected_bad:
                expected_bad.append(len(lines))
        lines.append("")
    path = temp_file("x.conll", "\n".join(lines) + "\n")
    try:
        read = read_conll(path, scheme=None)
    except DataError as err:
        assert expected_bad and err.line == expected_bad[0] and str(err).startswith(f"{path}:{err.line}: ")
        return
    assert not expected_bad
    assert [s.words for s in read] == [[t.strip() for t in s] for s in sentences]
    assert all(s.tags == ["O"] * len(s) for s in read)


@QUICK
@given(st.text(max_size=300), st.sampled_from(["x.conll", "x.jsonl", "x.conllu", "x.txt"]),
       st.sampled_from(["error", "warn", "skip"]))
def test_any_text_reads_or_fails_with_a_data_error(text, name, policy):
    """Arbitrary file content through the tagging reader: sentences of non-blank words, or a
    DataError, never another exception (raw-text splitting is spaCy's, so .txt only needs words)."""
    path = temp_file(name, text)
    try:
        sentences = list(iter_words(path, bad_lines=policy))
    except DataError:
        assert policy == "error"
        return
    assert all(s.words and all(isinstance(w, str) and w.strip() for w in s.words) for s in sentences)


# --- the engine ------------------------------------------------------------------------------

WORD = st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=12).filter(str.strip),
                 st.sampled_from(["\u0301a", "👍🏽", "e\u0301", "x\u200by", "ǅ", "ﬁ", "a" * 80, "\x7f!"]))
POLICIES = [ExitPolicy(), ExitPolicy.tokee(0.3, window=0), ExitPolicy.tokee(0.6, window=2)]


def check_batch_independence(model, sentences, batch_size, policy):
    together = Tagger(model, policy=policy, batch_size=batch_size).tag(sentences)
    assert [r.words for r in together] == sentences
    assert [len(r.labels) for r in together] == [len(s) for s in sentences]
    assert [len(r.exit_layers) for r in together] == [len(s) for s in sentences]
    alone = Tagger(model, policy=policy, batch_size=1)
    for sentence, result in zip(sentences, together):
        [single] = alone.tag([sentence])
        assert single.labels == result.labels
        assert single.exit_layers == result.exit_layers


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(WORD, min_size=0, max_size=12), min_size=1, max_size=5), st.integers(1, 4),
       st.sampled_from(POLICIES))
def test_every_word_one_label_and_batch_composition_does_not_matter(make_tagger, sentences, batch_size, policy):
    check_batch_independence(make_tagger(4), sentences, batch_size, policy)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(WORD, min_size=0, max_size=90), min_size=1, max_size=8), st.integers(1, 8),
       st.sampled_from(POLICIES))
def test_long_sentences_and_big_batches_too(make_tagger, sentences, batch_size, policy):
    check_batch_independence(make_tagger(4), sentences, batch_size, policy)
