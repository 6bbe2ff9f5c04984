"""`MultiExitTagger`: an encoder with one exit classifier after every layer.

An exit reads a word's state at its first piece (`seqexit.exit_heads.ExitHead`); the exits
below the last may also read its neighbours, its states at the layers below, an imitation of
the deeper layers and a hidden layer, which makes them far better for a few FLOPs per word
(`seqexit.training.context_exits`).

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
from .exit_heads import MAX_EXIT_CONTEXT, ExitHead, ExitShape, WordPast, with_neighbours
from .pieces import Batch, WordPieceEncoder, at_word_starts, piece_words

if TYPE_CHECKING:
    from .exits.learned import LearnedExitHeads
    from .exits.signals import HaltingSignals

FORMAT_VERSION = 1  # of the saved config (seqexit.bundle)
TASKS = ("ner", "chunk", "pos")
__all__ = ["MAX_EXIT_CONTEXT", "ExitHead", "ExitShape", "MultiExitTagger", "TaggerConfig", "WordPast", "with_neighbours"]


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
    # what each exit reads (`seqexit.exit_heads.ExitShape`), one entry per layer; None: plain
    exit_context: list[int] | None = None  # words on each side
    exit_past: list[bool] | None = None  # the mean of the word's states below
    exit_future: list[int] | None = None  # units of the deeper layers' imitation
    exit_hidden: list[int] | None = None  # units of a hidden layer
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
        given = [len(v) for v in (self.exit_context, self.exit_past, self.exit_future, self.exit_hidden) if v is not None]
        if len(set(given)) > 1:
            raise ValueError("exit_context, exit_past, exit_future and exit_hidden must give one entry per layer each")
        if given:
            self.exit_shapes(given[0])  # checks every entry

    def exit_shapes(self, num_layers: int) -> list[ExitShape]:
        """What each of `num_layers` exits reads (plain where the config says nothing)."""
        def entries(values: list | None, default) -> list:
            if values is not None and len(values) != num_layers:
                raise ValueError(f"exit shapes must give one entry per layer ({num_layers}), got {len(values)}")
            return list(values) if values is not None else [default] * num_layers

        return [ExitShape(*fields) for fields in zip(entries(self.exit_context, 0), entries(self.exit_past, False),
                                                     entries(self.exit_future, 0), entries(self.exit_hidden, 0))]

    def set_exit_shapes(self, shapes: list[ExitShape]) -> None:
        """Record `shapes`, leaving the fields no exit uses at None (the saved file stays as before)."""
        self.exit_context = [s.context for s in shapes] if any(s.context for s in shapes) else None
        self.exit_past = [s.past for s in shapes] if any(s.past for s in shapes) else None
        self.exit_future = [s.future for s in shapes] if any(s.future for s in shapes) else None
        self.exit_hidden = [s.hidden for s in shapes] if any(s.hidden for s in shapes) else None


class MultiExitTagger(nn.Module):
    """Encoder + `num_layers` exits; word i is read at its first word piece."""

    def __init__(self, encoder: nn.Module, config: TaggerConfig, tokenizer=None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.adapter = adapter_for(encoder)
        shapes = config.exit_shapes(self.adapter.num_layers)
        self.exits = nn.ModuleList(
            ExitHead(self.adapter.hidden_size, len(config.labels), config.exit_dropout, s.context, past=s.past,
                     future=s.future, hidden=s.hidden)
            for s in shapes
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

    @property
    def reads_past(self) -> bool:
        """Whether an exit reads the word's states below its layer (the loops then keep a `WordPast`)."""
        return any(head.shape.past for head in self.exits)

    def read_exit(
        self, layer: int, states: torch.Tensor, word_starts: torch.Tensor, generator: torch.Generator | None = None,
        past: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exit `layer` (0-based) on piece states (batch, pieces, hidden) at `word_starts`
        (batch, words; 0 on padding, where no word starts): (batch, words, labels).
        past: (batch, words, hidden), `WordPast.mean()` before this layer's states are added;
        needed by an exit with `past` only."""
        return self.read_exit_words(layer, at_word_starts(states, word_starts), word_starts, generator, past)

    def read_exit_words(
        self, layer: int, words: torch.Tensor, word_starts: torch.Tensor, generator: torch.Generator | None = None,
        past: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`read_exit` on the states already taken at the word starts: words (batch, words,
        hidden) -> (batch, words, labels)."""
        head = self.exits[layer]
        present = word_starts > 0 if head.context else None  # padding gathered [CLS]: its neighbours read zeros
        return head(words, generator, past if head.shape.past else None, present)

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
        self, batch: Batch, num_layers: int | None = None, exit_layer: torch.Tensor | None = None,
        past: list[WordPast] | None = None,
    ) -> Iterator[torch.Tensor]:
        """The one layer loop of full depth, static exits and training: yields the piece states
        (batch, pieces, hidden) after each of the first `num_layers` layers.

        past: an empty list to receive the batch's `WordPast`, which holds the embeddings
            when the first layer's states are yielded and each layer's once the next one is asked for.
        exit_layer: (batch, words) long, 1-based; word i stops at layer exit_layer[i]: its pieces
            are frozen there and serve only as keys/values above it, as under TOKEE at inference
            (self-sampling fine-tuning trains through this). None: every piece runs every layer.
        The inference TOKEE/SENTEE loop (`seqexit.exits.halting`) cannot share this loop: it
        decides halting as it goes and packs and regroups the running rows at every layer."""
        depth = num_layers or self.num_layers
        if not 1 <= depth <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {depth}")
        hidden = self.adapter.embed(batch.input_ids, batch.casing_ids)  # (batch, pieces, hidden)
        if past is not None:
            past.append(WordPast.from_embeddings(hidden, batch.word_starts))
        owner = piece_words(batch) if exit_layer is not None else None
        for layer in range(depth):
            if past is not None and layer:
                past[0].add_layer(hidden, batch.word_starts)
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
        past: list[WordPast] | None = [] if self.reads_past else None
        for layer, hidden in enumerate(self.layer_states(batch, depth, exit_layer, past)):
            if exits == "all" or layer == depth - 1:
                logits.append(self.read_exit(layer, hidden, batch.word_starts, past=past[0].mean() if past else None))
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
