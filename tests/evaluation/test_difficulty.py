"""The Difficulty Inversion Score against a brute-force count of pairs, and word difficulty."""

import itertools
import math

import torch

from seqexit.data import Sentence
from seqexit.evaluation.difficulty import difficulty_inversion_score, word_difficulty


def brute_force(exit_layers, difficulty):
    inverted = concordant = 0
    for i, j in itertools.combinations(range(len(exit_layers)), 2):
        if difficulty[i] == difficulty[j] or exit_layers[i] == exit_layers[j]:
            continue
        if (difficulty[i] - difficulty[j]) * (exit_layers[i] - exit_layers[j]) < 0:
            inverted += 1
        else:
            concordant += 1
    return inverted / (inverted + concordant) if inverted + concordant else math.nan


def test_dis_equals_the_pair_count():
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        difficulty = torch.randint(0, 5, (80,), generator=generator)
        layers = torch.randint(1, 7, (80,), generator=generator)
        assert math.isclose(difficulty_inversion_score(layers, difficulty), brute_force(layers.tolist(), difficulty.tolist()))
    assert difficulty_inversion_score(torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2])) == 0.0, "harder words exit later"
    assert difficulty_inversion_score(torch.tensor([3, 2, 1]), torch.tensor([0, 1, 2])) == 1.0
    assert math.isnan(difficulty_inversion_score(torch.tensor([2, 2]), torch.tensor([0, 1])))


def test_word_difficulty_counts_wrong_exits(make_tagger, sentences):
    model = make_tagger(4)
    gold = [Sentence(words, ["O"] * len(words)) for words in sentences]
    difficulty = word_difficulty(model, gold)
    assert len(difficulty) == sum(map(len, sentences)) and 0 <= int(difficulty.min()) and int(difficulty.max()) <= 4
