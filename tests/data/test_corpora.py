"""The benchmark corpora read to their published counts (skipped where ../shared/data is absent)."""

from collections import Counter
from pathlib import Path

import pytest

from seqexit.data import decode_spans, read_conll, read_conllu

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found: the benchmark corpora live beside the repo")
pytestmark = [pytest.mark.slow, pytest.mark.integration]  # reads the full benchmark corpora from disk


@needs_data
@pytest.mark.parametrize(
    "name, sentences, tokens, entities",
    [
        ("eng.train", 14041, 203621, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
        ("eng.testa", 3250, 51362, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
        ("eng.testb", 3453, 46435, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
    ],
)
def test_conll2003(name, sentences, tokens, entities):
    read = read_conll(DATA / "conll2003" / name)
    assert (len(read), sum(len(s) for s in read)) == (sentences, tokens)
    assert Counter(span.label for s in read for span in decode_spans(s.tags, "iob2")) == entities


@needs_data
@pytest.mark.parametrize("split, sentences, words", [("train", 12544, 204577), ("dev", 2001, 25147), ("test", 2077, 25094)])
def test_ud_english_ewt(split, sentences, words):
    read = read_conllu(DATA / "ud_en_ewt" / f"en_ewt-ud-{split}.conllu")
    assert (len(read), sum(len(s) for s in read)) == (sentences, words)
    assert len({t for s in read for t in s.tags}) <= 17


@needs_data
@pytest.mark.parametrize("split, sentences, tokens", [("train", 8936, 211727), ("test", 2012, 47377)])
def test_conll2000(split, sentences, tokens):
    read = read_conll(DATA / "conll2000" / f"{split}.txt")
    assert (len(read), sum(len(s) for s in read)) == (sentences, tokens)
    assert read[0].tags[0] == "B-NP"  # IOB2 kept as it is
    assert not any("repairs" in s.meta for s in read)
