"""Do words that exit early deserve to? The Difficulty Inversion Score (after CascadeBERT) of an
exit policy's decisions: a word's difficulty is how many of the model's exits label it wrongly
(0..L, from one full forward); a pair of words is *inverted* when the harder one exits at an
earlier layer than the easier one. DIS is the share of inverted pairs among the pairs that differ
in both difficulty and exit layer: 0 when exit order follows difficulty, 0.5 when it is chance,
lower is better."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import Sentence
from ..exits import run_exits
from ..model import MultiExitTagger


def word_difficulty(model: MultiExitTagger, sentences: Sequence[Sentence], *, batch_size: int = 64) -> torch.Tensor:
    """(words,) long: per word of all sentences (in order), how many exits label it wrongly."""
    index = {label: i for i, label in enumerate(model.labels)}
    outputs = run_exits(model, [s.words for s in sentences], batch_size=batch_size, all_exits=True)
    wrong = [out.label_ids.ne(torch.tensor([index[t] for t in s.tags])[None]).sum(0) for s, out in zip(sentences, outputs)]
    return torch.cat(wrong) if wrong else torch.zeros(0, dtype=torch.long)


def difficulty_inversion_score(exit_layers: torch.Tensor, difficulty: torch.Tensor) -> float:
    """DIS of (words,) exit layers (1-based) against (words,) difficulties; NaN without any pair
    that differs in both."""
    table = torch.zeros(int(difficulty.max()) + 1, int(exit_layers.max()) + 1, dtype=torch.float64)
    table.index_put_((difficulty.long(), exit_layers.long()), torch.ones(len(difficulty), dtype=torch.float64), accumulate=True)
    # later[d, e]: words with difficulty < d exiting at a layer > e (an easier word that ran longer)
    easier = table.cumsum(0) - table  # rows: difficulty strictly below d
    later = easier.flip(1).cumsum(1).flip(1) - easier  # columns: layer strictly above e
    inverted = float((table * later).sum())
    # concordant: an easier word exiting earlier than a harder one
    earlier = easier.cumsum(1) - easier  # difficulty below d, layer strictly below e
    concordant = float((table * earlier).sum())
    total = inverted + concordant
    return inverted / total if total else float("nan")
