"""`ExitHead`: the classifier after one layer, from one word's state to its label logits.

A plain exit is dropout + linear on the word's state at its first piece. Exits below the last
may read more, each a few FLOPs per word (`seqexit.training.context_exits` fits them):

- context k: the states of words i-k..i+k at the same layer, concatenated;
- past: the mean of the word's own states at the embeddings and every layer below
  (the "past" of Global Past-Future early exit, Liao et al., NAACL 2021, per word);
- future f: an imitation of the deeper layers' states (their mean at this word), predicted from
  this layer's state by a small f-unit perceptron trained to match them (the "future");
- hidden m: an m-unit GELU layer beside the linear one, on the same input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .pieces import at_word_starts

MAX_EXIT_CONTEXT = 8  # neighbours on each side an exit may read
MAX_EXIT_UNITS = 4096  # future/hidden units an exit may have


@dataclass(frozen=True)
class ExitShape:
    """What one exit reads and how deep it is (all zero/False: a plain linear exit)."""

    context: int = 0
    past: bool = False
    future: int = 0
    hidden: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.context, int) and 0 <= self.context <= MAX_EXIT_CONTEXT):
            raise ValueError(f"exit context must be an integer in 0..{MAX_EXIT_CONTEXT}, got {self.context!r}")
        if not isinstance(self.past, bool):
            raise ValueError(f"exit past must be true or false, got {self.past!r}")
        for name in ("future", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, int) and 0 <= value <= MAX_EXIT_UNITS):
                raise ValueError(f"exit {name} must be an integer in 0..{MAX_EXIT_UNITS}, got {value!r}")

    @property
    def plain(self) -> bool:
        return self == ExitShape()

    def describe(self) -> str:
        parts = [f"context {self.context}"] if self.context else []
        parts += ["past"] if self.past else []
        parts += [f"future {self.future}"] if self.future else []
        parts += [f"hidden {self.hidden}"] if self.hidden else []
        return ", ".join(parts) or "linear"

    def to_dict(self) -> dict:
        return asdict(self)


class ExitHead(nn.Module):
    """One layer's word states -> label logits: (..., words, hidden) -> (..., words, labels)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, context: int = 0, *,
                 past: bool = False, future: int = 0, hidden: int = 0) -> None:
        super().__init__()
        self.shape = ExitShape(context, past, future, hidden)
        self.hidden_size, self.num_labels = hidden_size, num_labels
        self.dropout = nn.Dropout(dropout)
        self.imitate = (nn.Sequential(nn.Linear(hidden_size, future), nn.GELU(), nn.Linear(future, hidden_size))
                        if future else None)
        self.linear = nn.Linear(self.input_size, num_labels)
        self.inner = nn.Sequential(nn.Linear(self.input_size, hidden), nn.GELU(), nn.Linear(hidden, num_labels)) if hidden else None

    @property
    def context(self) -> int:
        return self.shape.context

    @property
    def input_size(self) -> int:
        """Features the classifier reads per word."""
        s = self.shape
        return self.hidden_size * (2 * s.context + 1 + int(s.past) + int(bool(s.future)))

    def flops_per_word(self) -> int:
        """Multiply-adds x 2 of one word's read (biases and activations left out)."""
        h, c, s = self.hidden_size, self.num_labels, self.shape
        n = self.input_size
        return 2 * n * c + 4 * h * s.future + 2 * s.hidden * (n + c)

    def forward(self, words: torch.Tensor, generator: torch.Generator | None = None,
                past: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
        """words: (..., words, hidden); past: (..., words, hidden) the mean of each word's
        states below this layer (`WordPast`), needed when `shape.past`; present: (..., words)
        bool, False on padding, which its neighbours then read as zeros (`MultiExitTagger.read_exit`
        passes it). A `generator` draws the dropout mask from its own stream instead of torch's
        global one."""
        if self.shape.context and self.inner is None and not (self.training and self.dropout.p > 0):
            return self._linear_by_parts(words, past, present)
        if present is not None and self.shape.context:
            words = words * present[..., None].to(words.dtype)
        features = self.features(words, past)
        if generator is not None and self.training and self.dropout.p > 0.0:
            keep = 1.0 - self.dropout.p
            mask = torch.bernoulli(torch.full(features.shape, keep, device=features.device), generator=generator)
            features = features * mask.to(features.dtype) / keep
        else:
            features = self.dropout(features)
        logits = self.linear(features)
        return logits if self.inner is None else logits + self.inner(features)

    def _linear_by_parts(self, words: torch.Tensor, past: torch.Tensor | None,
                         present: torch.Tensor | None = None) -> torch.Tensor:
        """`linear(features(words, past))` without building the features: every neighbour's
        share is one product on the words' own states, shifted into place, so the (2k+1)-wide
        copy of the states is never made (measured 3x faster at batch 32 for k = 1)."""
        s, h, c, n = self.shape, self.hidden_size, self.num_labels, words.shape[-2]
        width = 2 * s.context + 1
        weight = self.linear.weight  # (labels, input_size): window blocks, [past], [future]
        per_offset = weight[:, :width * h].unflatten(1, (width, h)).transpose(0, 1).reshape(width * c, h)
        shares = nn.functional.linear(words, per_offset).unflatten(-1, (width, c))  # (..., words, width, labels)
        if present is not None:  # a padded word lends its neighbours nothing
            shares = shares * present[..., None, None].to(shares.dtype)
        shares = nn.functional.pad(shares, (0, 0, 0, 0, s.context, s.context))  # (..., words + 2k, width, labels)
        logits = self.linear.bias + sum(shares[..., o:o + n, o, :] for o in range(width))  # (..., words, labels)
        block = width * h
        if s.past:
            if past is None:
                raise ValueError("this exit reads the past: pass the mean of the states below (WordPast)")
            logits = logits + nn.functional.linear(past, weight[:, block:block + h])
            block += h
        if self.imitate is not None:
            logits = logits + nn.functional.linear(self.imitate(words), weight[:, block:block + h])
        return logits

    def features(self, words: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        """(..., words, hidden) -> (..., words, input_size): what the classifier reads."""
        s = self.shape
        parts = [with_neighbours(words, s.context) if s.context else words]
        if s.past:
            if past is None:
                raise ValueError("this exit reads the past: pass the mean of the states below (WordPast)")
            parts.append(past)
        if self.imitate is not None:
            parts.append(self.imitate(words))
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def with_neighbours(words: torch.Tensor, context: int) -> torch.Tensor:
    """(..., words, hidden) -> (..., words, (2 * context + 1) * hidden): each word's state
    after those of the `context` words before it and before those of the words after it, zeros
    past either end."""
    n = words.shape[-2]
    padded = nn.functional.pad(words, (0, 0, context, context))  # (..., words + 2k, hidden)
    return torch.cat([padded[..., offset:offset + n, :] for offset in range(2 * context + 1)], -1)


class WordPast:
    """The running sum of each word's states (at its first piece) over the embeddings and the
    layers run so far: what exits with `past` read, as a mean. Rows may be updated in groups
    (the TOKEE loop): every running row has run the same layers, so one count serves all."""

    def __init__(self, total: torch.Tensor, count: int = 1) -> None:
        self.total, self.count = total, count  # (batch, words, hidden) the sum of `count` layers' states

    @classmethod
    def from_embeddings(cls, embedded: torch.Tensor, word_starts: torch.Tensor) -> WordPast:
        return cls(at_word_starts(embedded, word_starts))

    def mean(self, rows: torch.Tensor | slice = slice(None), words: int | None = None) -> torch.Tensor:
        return self.total[rows, :words] / self.count

    def add_layer(self, states: torch.Tensor, word_starts: torch.Tensor) -> None:
        """Add one more layer's states (batch, pieces, hidden) for the whole batch."""
        self.total = self.total + at_word_starts(states, word_starts)
        self.count += 1

    def add_rows(self, states: torch.Tensor, word_starts: torch.Tensor, rows: torch.Tensor) -> None:
        """Add one more layer's states (group, pieces, hidden) for some rows; call `next_layer`
        once every running row is in (the rows that stopped are not read again)."""
        self.add_words(at_word_starts(states, word_starts), rows)

    def add_words(self, words: torch.Tensor, rows: torch.Tensor) -> None:
        """`add_rows` on the states already taken at the word starts (group, words, hidden)."""
        self.total[rows, :words.shape[1]] += words

    def next_layer(self) -> None:
        self.count += 1
