"""CLI fixtures: tiny random models saved to disk (untrained: the commands' plumbing is under
test, not accuracy)."""

from __future__ import annotations

import pytest

from seqexit.model import MultiExitTagger

UPOS = ["ADJ", "ADP", "DET", "NOUN", "PRON", "PROPN", "PUNCT", "VERB"]


@pytest.fixture(scope="session")
def ner_model(make_tagger, tmp_path_factory):
    """A saved 4-layer NER tagger (labels O, B-/I- PER, LOC, ORG)."""
    return make_tagger(4).save(tmp_path_factory.mktemp("ner-model"))


@pytest.fixture(scope="session")
def pos_model(tiny_backbone, tmp_path_factory):
    """A saved 4-layer POS tagger over Universal POS tags."""
    model = MultiExitTagger.from_backbone(tiny_backbone, UPOS, task="pos", scheme=None)
    return model.save(tmp_path_factory.mktemp("pos-model"))
