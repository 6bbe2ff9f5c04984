"""Shared fixtures of the training tests: a toy NER corpus, a fresh tiny model and small, fast
training configs (on top of tests/conftest.py's `tiny_backbone`)."""

from __future__ import annotations

import random

import pytest
import torch

from seqexit.data import Sentence
from seqexit.model import MultiExitTagger
from seqexit.training import TrainConfig
from seqexit.training.joint import IGNORE

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
PEOPLE = ["john", "mary"]
PLACES = ["paris", "london", "berlin"]
FILLER = ["the", "said", "in", "was", "on", "monday", "it", "and"]
SMALL_CONFIG = dict(epochs=3, learning_rate=3e-3, batch_size=8, seed=7, checkpoint_every=5, eval_batch_size=16)


def make_corpus(n: int, seed: int) -> list[Sentence]:
    """Sentences where names are PER (John Smith is one span) and cities LOC."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(3, 8)):
            kind = rng.random()
            if kind < 0.2:
                words += [rng.choice(PEOPLE), "smith"]
                tags += ["B-PER", "I-PER"]
            elif kind < 0.4:
                words.append(rng.choice(PLACES))
                tags.append("B-LOC")
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        sentences.append(Sentence(words, tags))
    return sentences


def make_labelled_batch(model: MultiExitTagger, sentences: list[Sentence]):
    """(batch, labels) of short sentences (one chunk each), unlabelled positions IGNORE."""
    batch = model.pieces.collate([c[0] for c in model.pieces.encode([s.words for s in sentences])])
    labels = torch.full(batch.word_mask.shape, IGNORE)
    for row, s in enumerate(sentences):
        labels[row, : len(s.tags)] = torch.tensor([model.labels.index(t) for t in s.tags])
    return batch, labels


@pytest.fixture()
def corpus():
    """corpus(n, seed) -> n toy NER sentences."""
    return make_corpus


@pytest.fixture()
def fresh(tiny_backbone):
    """fresh() -> a new tagger on the tiny backbone, the same weights every call."""

    def make() -> MultiExitTagger:
        torch.manual_seed(0)
        return MultiExitTagger.from_backbone(tiny_backbone, LABELS)

    return make


@pytest.fixture()
def small_config():
    """small_config(**overrides) -> a TrainConfig of a few quick epochs (checkpoints every 5 steps)."""
    return lambda **overrides: TrainConfig(**{**SMALL_CONFIG, **overrides})


@pytest.fixture()
def labelled_batch():
    """labelled_batch(model, sentences) -> (batch, labels)."""
    return make_labelled_batch
