"""`MultiExitTagger`: an encoder with one exit classifier (dropout + linear) after every layer.

An exit reads a word's state at its first piece; a *context exit* also reads its neighbours'
(`ExitHead.context` words on each side, at the same layer), which makes the lower exits far
better for a few FLOPs per word (`seqexit.training.context_exits`).

A plain `nn.Module`: its folder format (save, load, compact) is the model bundle's
(`seqexit.bundle`), and the training forward is `seqexit.training.forward`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .backbones import load_backbone, resolve_backbone
from .casing import add_casing_embeddings
from .encoders import adapter_for
from .pieces import Batch, WordPieceEncoder, at_word_starts, piece_words

if TYPE_CHECKING:
    from .exits.learned import LearnedExitHeads
    from .exits.signals import HaltingSignals

FORMAT_VERSION = 1  # of the saved config (seqexit.bundle)
TASKS = ("ner", "chunk", "pos")
MAX_EXIT_CONTEXT = 8  # neighbours on each side an exit may read


@dataclass
class TaggerConfig:
    """Everything besides the weights that is needed to rebuild a tagger."""

    labels: list[str]
    task: str = "ner"
    scheme: str | None = "iob2"  # span scheme of `labels`; None for per-word tags (POS)
    backbone: str = ""  # where the encoder came from, for the record
    exit_dropout: float = 0.1
    max_pieces: int = 512
    casing: bool = False  # learned casing features on the piece embeddings (seqexit.casing)
    backbone_config: dict = field(default_factory=dict)
    # words read on each side of a word by each exit (`ExitHead.context`); None: 0 everywhere
    exit_context: list[int] | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ValueError("labels must be a non-empty list without repeats")
        if self.exit_context is not None and not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= MAX_EXIT_CONTEXT for k in self.exit_context
        ):
            raise ValueError(f"exit_context must list integers in 0..{MAX_EXIT_CONTEXT}, got {self.exit_context!r}")


class ExitHead(nn.Module):
    """dropout + linear: one layer's hidden states at word starts -> label logits.

    context k > 0: word i's logits read the states of words i-k..i+k (zeros past the sentence's
    ends and on padding), concatenated in that order: (..., words, hidden) -> the linear sees
    (..., words, (2k+1) * hidden)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, context: int = 0) -> None:
        super().__init__()
        self.context = context
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size * (2 * context + 1), num_labels)

    def forward(self, hidden: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(..., words, hidden) -> (..., words, labels); padded words must be zeros when
        `context` > 0 (`MultiExitTagger.read_exit` does it). A `generator` draws the dropout
        mask from its own stream instead of torch's global one (see `MultiExitTagger.forward`)."""
        if self.context:
            hidden = with_neighbours(hidden, self.context)
        if generator is None or not self.training or self.dropout.p == 0.0:
            return self.linear(self.dropout(hidden))
        keep = 1.0 - self.dropout.p
        mask = torch.bernoulli(torch.full(hidden.shape, keep, device=hidden.device), generator=generator)
        return self.linear(hidden * mask.to(hidden.dtype) / keep)


def with_neighbours(words: torch.Tensor, context: int) -> torch.Tensor:
    """(..., words, hidden) -> (..., words, (2 * context + 1) * hidden): each word's state
    after those of the `context` words before it and before those of the words after it, zeros
    past either end."""
    n = words.shape[-2]
    padded = nn.functional.pad(words, (0, 0, context, context))  # (..., words + 2k, hidden)
    return torch.cat([padded[..., offset:offset + n, :] for offset in range(2 * context + 1)], -1)


class MultiExitTagger(nn.Module):
    """Encoder + `num_layers` exits; word i is read at its first word piece."""

    def __init__(self, encoder: nn.Module, config: TaggerConfig, tokenizer=None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.adapter = adapter_for(encoder)
        context = config.exit_context or [0] * self.adapter.num_layers
        if len(context) != self.adapter.num_layers:
            raise ValueError(f"exit_context must give one width per layer ({self.adapter.num_layers}), got {len(context)}")
        self.exits = nn.ModuleList(
            ExitHead(self.adapter.hidden_size, len(config.labels), config.exit_dropout, k) for k in context
        )
        if config.casing:  # after the exits, whose random init stays as without casing
            add_casing_embeddings(encoder, self.adapter.hidden_size)
        self.tokenizer = tokenizer
        self.quantized: str | None = None  # "int8" once `seqexit.quantize.quantize_model` has run
        self.runtime = "torch"  # what runs the layers; "onnx" after `seqexit.runtime.apply_runtime`
        # one softmax temperature per exit, fitted on dev for the "confidence" criterion
        # (`seqexit.evaluation.temperature`); None: 1.0 everywhere
        self.exit_temperatures: list[float] | None = None
        # the "learned" criterion's heads (`seqexit.exits.learned`), saved in their own file
        self.learned_exits: LearnedExitHeads | None = None
        # the "signals" criterion's heads (`seqexit.exits.signals`), saved in their own file
        self.halting_signals: HaltingSignals | None = None
        # how `seqexit train` made the model (`seqexit.training.record`), kept with it
        self.training_record: dict | None = None
        self.pieces = WordPieceEncoder(tokenizer, config.max_pieces, config.casing) if tokenizer is not None else None

    @property
    def num_layers(self) -> int:
        return self.adapter.num_layers

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def read_exit(
        self, layer: int, states: torch.Tensor, word_starts: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exit `layer` (0-based) on piece states (batch, pieces, hidden) at `word_starts`
        (batch, words; 0 on padding, where no word starts): (batch, words, labels)."""
        words = at_word_starts(states, word_starts)  # (batch, words, hidden)
        head = self.exits[layer]
        if head.context:  # padding gathered [CLS]: a neighbour that is not there reads zeros
            words = words * (word_starts > 0)[..., None].to(words.dtype)
        return head(words, generator)

    @classmethod
    def from_backbone(
        cls, backbone: str | Path, labels: list[str], task: str = "ner", scheme: str | None = "iob2",
        exit_dropout: float = 0.1, casing: bool = False, num_layers: int | None = None,
    ) -> MultiExitTagger:
        """A fresh tagger on a local Hugging Face encoder folder or an installed backbone's name
        (see `seqexit.backbones`; no download is ever tried).

        casing: add learned casing features (for uncased backbones; see `seqexit.casing`).
        num_layers: keep only the backbone's first k layers (a smaller static model, the way
            DistilBERT-style compression would; saved and loaded as a k-layer encoder)."""
        folder = str(resolve_backbone(backbone))  # a name like "minilm-l6" is recorded as the name
        encoder, tokenizer = load_backbone(folder)  # safetensors only, no remote code, sizes checked
        drop_pooler(encoder)
        if num_layers is not None:
            _truncate(encoder, num_layers)
        config = TaggerConfig(
            labels=list(labels), task=task, scheme=scheme, backbone=str(backbone), exit_dropout=exit_dropout, casing=casing,
            max_pieces=min(encoder.config.max_position_embeddings, tokenizer.model_max_length, 512),
            backbone_config=encoder.config.to_dict(),
        )
        return cls(encoder, config, tokenizer)

    def layer_states(
        self, batch: Batch, num_layers: int | None = None, exit_layer: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        """The one layer loop of full depth, static exits and training: yields the piece states
        (batch, pieces, hidden) after each of the first `num_layers` layers.

        exit_layer: (batch, words) long, 1-based; word i stops at layer exit_layer[i]: its pieces
            are frozen there and serve only as keys/values above it, as under TOKEE at inference
            (self-sampling fine-tuning trains through this). None: every piece runs every layer.
        The inference TOKEE/SENTEE loop (`seqexit.exits.halting`) cannot share this loop: it
        decides halting as it goes and packs and regroups the running rows at every layer."""
        depth = num_layers or self.num_layers
        if not 1 <= depth <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {depth}")
        hidden = self.adapter.embed(batch.input_ids, batch.casing_ids)  # (batch, pieces, hidden)
        owner = piece_words(batch) if exit_layer is not None else None
        for layer in range(depth):
            if owner is None:
                hidden = self.adapter.run_layer(layer, hidden, batch.attention_mask)
            else:
                running = (exit_layer > layer) & batch.word_mask  # (batch, words) words this layer updates
                pieces_active = batch.attention_mask & torch.where(
                    owner < 0, running.any(1, keepdim=True), running.gather(1, owner.clamp(min=0))
                )
                if bool(pieces_active.eq(batch.attention_mask).all()):
                    hidden = self.adapter.run_layer(layer, hidden, batch.attention_mask)
                else:
                    hidden = self.adapter.run_layer_active(layer, hidden, batch.attention_mask, pieces_active)
            yield hidden

    def forward(
        self, batch: Batch, *, num_layers: int | None = None, exits: str = "all", exit_layer: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of the exits at word starts: (n_exits, batch, words, labels).

        num_layers: run only the first k layers (a static exit: the encoder stops there).
        exits: "all" (one row per layer run) or "last" (only the deepest layer run).
        exit_layer: per-word exit layers, as in `layer_states`."""
        depth = num_layers or self.num_layers
        logits = []
        for layer, hidden in enumerate(self.layer_states(batch, depth, exit_layer)):
            if exits == "all" or layer == depth - 1:
                logits.append(self.read_exit(layer, hidden, batch.word_starts))
        return torch.stack(logits)


def _truncate(encoder: nn.Module, num_layers: int) -> None:
    """Keep the first `num_layers` transformer layers of a BERT-family encoder."""
    layers = encoder.encoder.layer
    if not 1 <= num_layers <= len(layers):
        raise ValueError(f"num_layers must be in 1..{len(layers)} for this backbone, got {num_layers}")
    encoder.encoder.layer = layers[:num_layers]
    encoder.config.num_hidden_layers = num_layers


def drop_pooler(encoder: nn.Module) -> None:
    """Taggers never use the [CLS] pooler; dropping it keeps it out of the saved weights."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
