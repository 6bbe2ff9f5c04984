"""`MultiExitTagger`: an encoder with one exit classifier (dropout + linear) after every layer.

Saved as one folder: `seqexit.json` (labels, task, scheme, backbone config), `model.safetensors`
(all weights) and the tokenizer files; or compact (`save_compact`): only what fine-tuning changed
against an installed backbone. Loading never unpickles anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from .backbones import resolve_backbone
from .casing import add_casing_embeddings
from .compact import COMPACT_FILE, load_compact, save_compact
from .exits.learned import LearnedExitHeads, load_learned_exits
from .encoders import adapter_for
from .files import umask_mode
from .pieces import Batch, WordPieceEncoder, at_word_starts, piece_words

CONFIG_FILE = "seqexit.json"
WEIGHTS_FILE = "model.safetensors"
TEMPERATURES_FILE = "temperatures.json"  # per-exit softmax temperatures (optional)
TRAINING_FILE = "training.json"  # how the model was trained: recipe, stages, settings (optional)
FORMAT_VERSION = 1
TASKS = ("ner", "chunk", "pos")


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
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ValueError("labels must be a non-empty list without repeats")


class ExitHead(nn.Module):
    """dropout + linear: one layer's hidden states at word starts -> label logits."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(..., hidden) -> (..., labels). A `generator` draws the dropout mask from its own
        stream instead of torch's global one (see `MultiExitTagger.forward`)."""
        if generator is None or not self.training or self.dropout.p == 0.0:
            return self.linear(self.dropout(hidden))
        keep = 1.0 - self.dropout.p
        mask = torch.bernoulli(torch.full(hidden.shape, keep, device=hidden.device), generator=generator)
        return self.linear(hidden * mask.to(hidden.dtype) / keep)


class MultiExitTagger(nn.Module):
    """Encoder + `num_layers` exits; word i is read at its first word piece."""

    def __init__(self, encoder: nn.Module, config: TaggerConfig, tokenizer=None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.adapter = adapter_for(encoder)
        self.exits = nn.ModuleList(
            ExitHead(self.adapter.hidden_size, len(config.labels), config.exit_dropout)
            for _ in range(self.adapter.num_layers)
        )
        if config.casing:  # after the exits, whose random init stays as without casing
            add_casing_embeddings(encoder, self.adapter.hidden_size)
        self.tokenizer = tokenizer
        self.quantized: str | None = None  # "int8" once `seqexit.quantize.quantize_model` has run
        # one softmax temperature per exit, fitted on dev for the "confidence" criterion
        # (`seqexit.evaluation.temperature`); None: 1.0 everywhere
        self.exit_temperatures: list[float] | None = None
        # the "learned" criterion's heads (`seqexit.exits.learned`), saved in their own file
        self.learned_exits: LearnedExitHeads | None = None
        # how `seqexit train` made the model (`seqexit.training.record`), kept with it
        self.training_record: dict | None = None
        self.pieces = WordPieceEncoder(tokenizer, config.max_pieces, config.casing) if tokenizer is not None else None

    @property
    def num_layers(self) -> int:
        return self.adapter.num_layers

    @property
    def labels(self) -> list[str]:
        return self.config.labels

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
        encoder = AutoModel.from_pretrained(folder, local_files_only=True)
        _drop_pooler(encoder)
        if num_layers is not None:
            _truncate(encoder, num_layers)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
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
                logits.append(self.exits[layer](at_word_starts(hidden, batch.word_starts)))
        return torch.stack(logits)

    def save(self, path: str | Path) -> Path:
        """Write config, safetensors weights and tokenizer to the folder `path`."""
        self._check_savable()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self._weights(), str(path / WEIGHTS_FILE), metadata={"format": "pt"})
        umask_mode(path / WEIGHTS_FILE)
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(path))
        self._save_extras(path)
        return path

    def _weights(self) -> dict[str, torch.Tensor]:
        """The tagger's own weights: the state dict without the learned exit heads (own file)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("learned_exits.")}

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> MultiExitTagger:
        """Rebuild a tagger saved with `save` (safetensors only)."""
        path = Path(path)
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{path} is not a seqexit model folder (no {CONFIG_FILE})")
        raw = json.loads(config_path.read_text())
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{path} was saved by a newer seqexit (format {raw['format_version']})")
        config = TaggerConfig(**raw)
        backbone_config = dict(config.backbone_config)
        encoder_config = AutoConfig.for_model(backbone_config.pop("model_type"), **backbone_config)
        encoder = AutoModel.from_config(encoder_config)
        _drop_pooler(encoder)
        compact = (path / COMPACT_FILE).is_file()
        tokenizer_dir = path
        if compact and not (path / "tokenizer_config.json").is_file():
            tokenizer_dir = resolve_backbone(json.loads((path / COMPACT_FILE).read_text())["base"])
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        model = cls(encoder, config, tokenizer)
        if compact:
            model.load_state_dict(load_compact(path, model.state_dict()))
        else:
            model.load_state_dict(load_file(str(path / WEIGHTS_FILE), device=str(device)))
        model.exit_temperatures = read_temperatures(path, model.num_layers)
        model.learned_exits = load_learned_exits(path, model.adapter.hidden_size, model.num_layers)
        model.training_record = read_training_record(path)
        return model.to(device).eval()

    def save_compact(self, path: str | Path, base: str) -> Path:
        """Write a compact folder: config + what fine-tuning changed against the installed
        backbone `base` (see `seqexit.compact`); the tokenizer comes from the backbone."""
        self._check_savable()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_compact(self._weights(), path, base)
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        self._save_extras(path)
        return path

    def _save_extras(self, path: Path) -> None:
        """Exit temperatures and learned exit heads, when the model has them."""
        if self.exit_temperatures is not None:
            write_temperatures(path, self.exit_temperatures)
        if self.learned_exits is not None:
            self.learned_exits.save(path)
        if self.training_record is not None:
            (path / TRAINING_FILE).write_text(json.dumps(self.training_record, indent=1) + "\n")


    def _check_savable(self) -> None:
        if self.quantized:
            raise ValueError(f"an {self.quantized} model cannot be saved: save the float model, and quantize after loading")


def read_training_record(path: Path) -> dict | None:
    """The training record stored in a model folder (None when it has none)."""
    file = path / TRAINING_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: malformed training record ({err})") from None


def write_temperatures(path: str | Path, temperatures: list[float]) -> Path:
    """Store per-exit temperatures in a model folder (what `seqexit calibrate` fits)."""
    file = Path(path) / TEMPERATURES_FILE
    file.write_text(json.dumps({"temperatures": [float(t) for t in temperatures]}, indent=2) + "\n")
    return file


def read_temperatures(path: Path, num_layers: int) -> list[float] | None:
    """The exit temperatures stored in a model folder (None when it has none); a malformed
    file is a ValueError naming it."""
    file = path / TEMPERATURES_FILE
    if not file.is_file():
        return None
    try:
        values = json.loads(file.read_text())["temperatures"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{file}: malformed temperatures file ({err}); rerun `seqexit calibrate`") from None
    if (not isinstance(values, list) or len(values) != num_layers
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
        raise ValueError(f"{file}: expected {num_layers} positive temperatures, one per exit, got {values!r}")
    return [float(v) for v in values]


def _truncate(encoder: nn.Module, num_layers: int) -> None:
    """Keep the first `num_layers` transformer layers of a BERT-family encoder."""
    layers = encoder.encoder.layer
    if not 1 <= num_layers <= len(layers):
        raise ValueError(f"num_layers must be in 1..{len(layers)} for this backbone, got {num_layers}")
    encoder.encoder.layer = layers[:num_layers]
    encoder.config.num_hidden_layers = num_layers


def _drop_pooler(encoder: nn.Module) -> None:
    """Taggers never use the [CLS] pooler; dropping it keeps it out of the saved weights."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None


def resolve_device(device: str) -> str:
    """`auto` -> cuda when available, else cpu; anything else must be a device torch knows and has."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, auto)") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU is available here")
    return device
