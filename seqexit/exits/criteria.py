"""Exit criteria: how an exit decides that its label for a word is good enough, per word.

Every criterion turns an exit's logits (plus what it remembers from the exits before) into a
per-word *doubt* in [0, 1]; a word qualifies at a layer when its doubt is below the criterion's
bound, and halts when every word of its window qualifies (TOKEE; SENTEE: every word of the
sentence). So the window, the engine's packing of active words and SENTEE work the same for all
of them; a halted word keeps the doubt and state it had when it halted.

- entropy (DeeBERT, the default): doubt = normalised entropy; halts below `threshold`.
- confidence (RightTool): doubt = 1 - top probability after the exit's temperature (fitted on
  dev, `fit_temperatures`); halts when the top probability is above `threshold`.
- patience (PABEE): halts once the label has stayed the same for `patience` consecutive exits.
- rising (ELBERT's confidence window): halts once the probability of the current label has
  risen at `patience` consecutive exits.
- vote (ensemble of internal classifiers): the exits so far vote for their label, weighted by
  depth (deeper exits are more accurate, the same weighting the joint loss uses); halts when the
  top label's lead over the runner-up is above `threshold` of the total weight of all L exits,
  so a lone shallow exit can never decide alone.
- learned (BERxiT): a small head per layer, trained with everything else frozen
  (`seqexit.exits.learned`), gives the probability that this exit's label already equals the
  last exit's; halts when it is above `threshold`.
- signals: the same probability from several signals instead of the hidden state (this exit's
  and the one below's doubt, the label and its streak, the neighbours' doubt; `seqexit.exits.signals`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .signals import signal_features
from .uncertainty import normalised_entropy

CRITERIA = ("entropy", "confidence", "patience", "rising", "vote", "learned", "signals")
TRAINED = {"learned": "learned_exits", "signals": "halting_signals"}  # criterion -> the model's heads it reads
COUNTING = ("patience", "rising")  # criteria that take `patience` (N exits) instead of a threshold


def doubt_bound(criterion: str, threshold: float) -> float:
    """The doubt below which a word qualifies, for a policy threshold: doubt < bound.

    entropy: the threshold itself (0 never halts); confidence and vote: 1 - threshold (a top
    probability or vote lead above the threshold; 1 never halts); patience and rising: their
    doubt is 0 or 1, so 0.5 (the threshold is not used)."""
    if criterion == "entropy":
        return threshold
    if criterion in ("confidence", "vote", "learned", "signals"):
        return 1.0 - threshold
    return 0.5


class CriterionState:
    """What a criterion remembers per word of a batch, across layers: tensors of shape
    (batch, words, ...), read and written for a group of rows at a time."""

    def __init__(self, criterion: str, size: int, n_words: int, n_labels: int, device: torch.device,
                 word_mask: torch.Tensor | None = None) -> None:
        self.criterion = criterion
        self.word_mask = word_mask  # (size, n_words): "signals" reads the neighbours
        self.tensors: dict[str, torch.Tensor] = {"doubt": torch.zeros(size, n_words, device=device)}
        if criterion in COUNTING:
            self.tensors["count"] = torch.zeros(size, n_words, dtype=torch.long, device=device)
        if criterion == "patience":
            self.tensors["label"] = torch.full((size, n_words), -1, dtype=torch.long, device=device)
        if criterion == "rising":
            self.tensors["probs"] = torch.zeros(size, n_words, n_labels, device=device)
        if criterion == "vote":
            self.tensors["votes"] = torch.zeros(size, n_words, n_labels, device=device)
        if criterion == "signals":
            self.tensors.update(entropy=torch.zeros(size, n_words, device=device), top=torch.zeros(size, n_words, device=device),
                                label=torch.full((size, n_words), -1, dtype=torch.long, device=device),
                                streak=torch.zeros(size, n_words, device=device))

    def step(
        self, rows: torch.Tensor, words: int, logits: torch.Tensor, active: torch.Tensor, layer: int,
        num_layers: int, patience: int | None, temperatures: Sequence[float] | None,
        features: torch.Tensor | None = None, heads=None,
    ) -> torch.Tensor:
        """Read exit `layer`'s logits (group, words, labels) for the group's rows; update the
        state of the active words, keep the halted words' as it was; return the group's doubt
        (group, words). features (group, words, hidden): for "learned"; heads: the model's heads
        of a trained criterion (`TRAINED`)."""
        old = {name: t[rows, :words] for name, t in self.tensors.items()}
        word_mask = self.word_mask[rows, :words] if self.word_mask is not None else None
        new = criterion_step(self.criterion, old, logits, layer, num_layers, patience, temperatures, features, heads,
                             word_mask)
        for name, value in new.items():
            keep = active if value.dim() == 2 else active[..., None]
            self.tensors[name][rows, :words] = torch.where(keep, value, old[name])
        return self.tensors["doubt"][rows, :words]


def criterion_step(
    criterion: str, state: dict[str, torch.Tensor], logits: torch.Tensor, layer: int, num_layers: int,
    patience: int | None, temperatures: Sequence[float] | None, features: torch.Tensor | None = None, heads=None,
    word_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The state after reading exit `layer` (0-based), `doubt` included, for every word.
    word_mask (group, words): where the words are, for "signals" (default: everywhere)."""
    if criterion == "entropy":
        return {"doubt": normalised_entropy(logits)}
    if criterion == "signals":
        if word_mask is None:
            word_mask = torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device)
        below = state if layer > 0 else None
        signals, now = signal_features(logits, below, word_mask)
        if layer == num_layers - 1:  # the last layer ends anyway
            return {"doubt": torch.zeros(logits.shape[:-1], device=logits.device), **now}
        return {"doubt": 1.0 - torch.sigmoid(heads(layer, signals)), **now}
    if criterion == "learned":
        if layer == num_layers - 1:  # the last layer ends anyway
            return {"doubt": torch.zeros(logits.shape[:-1], device=logits.device)}
        return {"doubt": 1.0 - torch.sigmoid(heads(layer, features))}
    if criterion == "confidence":
        temperature = temperatures[layer] if temperatures is not None else 1.0
        return {"doubt": 1.0 - (logits.float() / temperature).softmax(-1).amax(-1)}
    probs = logits.float().softmax(-1)  # (group, words, labels)
    label = probs.argmax(-1)
    if criterion == "patience":
        same = label.eq(state["label"])
        count = torch.where(same, state["count"] + 1, torch.zeros_like(state["count"]))
        return {"doubt": (count < patience).float(), "count": count, "label": label}
    if criterion == "rising":
        before = state["probs"].gather(-1, label[..., None])[..., 0]
        rose = probs.gather(-1, label[..., None])[..., 0] > before
        rose = rose & (layer > 0)  # the first exit has nothing to rise from
        count = torch.where(rose, state["count"] + 1, torch.zeros_like(state["count"]))
        return {"doubt": (count < patience).float(), "count": count, "probs": probs}
    if criterion == "vote":
        votes = state["votes"] + torch.nn.functional.one_hot(label, probs.shape[-1]).float() * (layer + 1)
        top2 = votes.topk(min(2, votes.shape[-1]), dim=-1).values
        lead = top2[..., 0] - (top2[..., 1] if top2.shape[-1] > 1 else 0.0)
        total = num_layers * (num_layers + 1) / 2  # every exit's weight: 1 + 2 + ... + L
        return {"doubt": 1.0 - lead / total, "votes": votes}
    raise ValueError(f"exit criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
