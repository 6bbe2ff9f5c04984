"""CLI fixtures: tiny random models saved to disk (untrained: the commands' plumbing is under
test, not accuracy)."""

from __future__ import annotations

import pytest

from seqexit.bundle import save_model
from seqexit.data import Sentence
from seqexit.model import MultiExitTagger

UPOS = ["ADJ", "ADP", "DET", "NOUN", "PRON", "PROPN", "PUNCT", "VERB"]
CORPUS_WORDS = ["john", "smith", "was", "in", "berlin", "on", "monday", ".", "mary", "said", "paris", "london", "reuters"]


def make_corpus(n: int) -> list[Sentence]:
    """n deterministic sentences of 1 to 17 words, alternately from sources f0.txt and f1.txt."""
    return [Sentence([CORPUS_WORDS[(i * 7 + j * 3) % len(CORPUS_WORDS)] for j in range(1 + (i * 5) % 17)],
                     source=f"f{i % 2}.txt")
            for i in range(n)]


@pytest.fixture(scope="session")
def corpus():
    """corpus(n) -> n deterministic sentences (as `make_corpus`) for the engines to tag."""
    return make_corpus


@pytest.fixture(scope="session")
def ner_model(make_tagger, tmp_path_factory):
    """A saved 4-layer NER tagger (labels O, B-/I- PER, LOC, ORG)."""
    return save_model(make_tagger(4), tmp_path_factory.mktemp("ner-model"))


@pytest.fixture(scope="session")
def pos_model(tiny_backbone, tmp_path_factory):
    """A saved 4-layer POS tagger over Universal POS tags."""
    model = MultiExitTagger.from_backbone(tiny_backbone, UPOS, task="pos", scheme=None)
    return save_model(model, tmp_path_factory.mktemp("pos-model"))
