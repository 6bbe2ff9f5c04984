"""Adopt a fine-tuned Hugging Face token classifier: make it a seqexit model without retraining it.

Its encoder becomes the model's encoder and its classifier the last exit, weight for weight, so
full depth gives the original model's labels (each word read at its first piece, argmax). The
exits below the last are new: they start as copies of the classifier and learn its output
distribution from text, with the encoder and the last exit frozen
(`seqexit.training.context_exits`), so no labelled data is needed. The label set comes from the
config's `id2label`, its scheme (IOB2, IOBES, BILOU or per-word tags) from the labels' prefixes.

The folder is untrusted input and is read as every backbone is (`seqexit.backbones`):
safetensors only, no remote code, sizes checked against the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbones import backbone_weights, check_backbone_folder, load_backbone, read_json, safetensors_shapes
from .encoders import SUPPORTED_MODEL_TYPES
from .model import MultiExitTagger, TaggerConfig, drop_pooler

# where the token-classification heads of the BERT family keep their classifier
CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")
PREFIX_SCHEMES = (({"E", "S"}, "iobes"), ({"L", "U"}, "bilou"))
# position ids that start after the padding id (RoBERTa style): fewer pieces than position rows
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "mpnet": 2}


@dataclass
class TokenClassifier:
    """What a Hugging Face token-classification folder holds besides its encoder."""

    folder: Path
    labels: list[str]  # by class id
    scheme: str | None  # span scheme of the labels; None for per-word tags
    weight: torch.Tensor  # (labels, hidden)
    bias: torch.Tensor  # (labels,)


def label_scheme(labels: Sequence[str], where: str) -> str | None:
    """The span scheme of a label set ("iob2", "iobes", "bilou"), or None for per-word tags
    (POS): all labels "O" or PREFIX-TYPE, or none of them. B-/I- label sets are read as IOB2
    (a tagger trained on IOB1 data still decodes right: an I- after O starts a span, as
    conlleval reads it). A mix is a ValueError naming `where` and the labels it cannot place."""
    prefixed = [label for label in labels if len(label) > 2 and label[1] == "-" and label[0] in "BIESLU"]
    plain = [label for label in labels if label != "O" and label not in prefixed]
    if not prefixed:
        return None
    if plain:
        raise ValueError(f"{where}: id2label mixes span labels ({', '.join(prefixed[:3])}) with others "
                         f"({', '.join(plain[:3])}); the label scheme cannot be told (spans need O and B-/I-/E-/S- labels)")
    prefixes = {label[0] for label in prefixed}
    for marks, scheme in PREFIX_SCHEMES:
        if prefixes & marks:
            return scheme
    return "iob2"


def read_token_classifier(folder: str | Path) -> TokenClassifier:
    """The labels and classifier of a token-classification folder, checked: a supported model
    type, an `id2label` with ids 0..n-1, safetensors weights holding a (labels, hidden)
    classifier. Every refusal is a ValueError or FileNotFoundError naming the file."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: not a Hugging Face model folder (no config.json)")
    raw = read_json(config_file, "model config")
    if not isinstance(raw, dict):
        raise ValueError(f"{config_file}: the config must be a JSON object")
    if raw.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{config_file}: model_type {raw.get('model_type')!r} cannot be adopted; supported: "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)}")
    labels = _labels(raw.get("id2label"), config_file)
    checked = check_backbone_folder(folder)  # sizes against the weights, before anything is built
    weights = backbone_weights(folder)
    shapes = safetensors_shapes(weights)
    missing = [key for key in CLASSIFIER_KEYS if key not in shapes]
    if missing:
        raise ValueError(f"{weights}: no token classifier ({', '.join(missing)} missing); adopt takes a folder saved "
                         "from a *ForTokenClassification model")
    hidden = checked["hidden_size"]
    if shapes["classifier.weight"] != (len(labels), hidden) or shapes["classifier.bias"] != (len(labels),):
        raise ValueError(f"{weights}: the classifier is {shapes['classifier.weight']}, but {config_file} gives "
                         f"{len(labels)} labels and hidden size {hidden}")
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        weight, bias = (handle.get_tensor(key).float() for key in CLASSIFIER_KEYS)
    return TokenClassifier(folder, labels, label_scheme(labels, str(config_file)), weight, bias)


def _labels(id2label, where: Path) -> list[str]:
    if not isinstance(id2label, dict) or not id2label:
        raise ValueError(f"{where}: no id2label: the folder does not say what its classes are")
    try:
        by_id = {int(key): value for key, value in id2label.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}: id2label keys must be class ids 0..n-1") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"{where}: id2label must give every class id 0..{len(by_id) - 1} once")
    labels = [by_id[i] for i in range(len(by_id))]
    if not all(isinstance(label, str) and label for label in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"{where}: id2label must give distinct, non-empty label names")
    if len(labels) < 2:
        raise ValueError(f"{where}: id2label has {len(labels)} label; a tagger needs at least 2")
    return labels


def adopted_tagger(folder: str | Path, task: str | None = None) -> MultiExitTagger:
    """A seqexit model whose encoder, tokenizer and last exit are the folder's token classifier,
    unchanged; the exits below the last are copies of its classifier until they are trained
    (`adopt`). task: "ner", "chunk" or "pos" (default: "ner" for span labels, "pos" for tags)."""
    source = read_token_classifier(folder)
    encoder, tokenizer = load_backbone(source.folder)
    drop_pooler(encoder)
    encoder.eval()
    config = TaggerConfig(
        labels=source.labels, task=task or ("ner" if source.scheme else "pos"), scheme=source.scheme,
        backbone=str(source.folder), exit_dropout=0.1,
        max_pieces=min(encoder.config.max_position_embeddings - POSITION_OFFSET.get(encoder.config.model_type, 0),
                       getattr(tokenizer, "model_max_length", 512), 512),
        backbone_config=encoder.config.to_dict(),
    )
    if (config.scheme is None) != (config.task == "pos"):
        raise ValueError(f"{source.folder}: task {config.task!r} does not fit its labels "
                         f"({'span labels' if config.scheme else 'per-word tags'})")
    model = MultiExitTagger(encoder, config, tokenizer)
    with torch.no_grad():
        for head in model.exits:
            head.linear.weight.copy_(source.weight)
            head.linear.bias.copy_(source.bias)
    model.eval()
    return model


def adopt(
    folder: str | Path, sentences: Sequence[Sequence[str]], *, task: str | None = None, context: int = 1,
    epochs: int = 2, learning_rate: float = 1e-3, batch_size: int = 32, progress: bool = False,
    checkpoint: str | Path | None = None,
) -> MultiExitTagger:
    """`adopted_tagger`, then its exits below the last trained on `sentences` (word lists; any
    labels are ignored) to give the last exit's distribution, reading `context` words on each
    side (0: the word alone). Full depth keeps the original model's labels. checkpoint: a
    folder the training state is kept in, and resumed from when it is there."""
    from .training.context_exits import train_context_exits

    model = adopted_tagger(folder, task)
    train_context_exits(model, sentences, context=context, epochs=epochs, learning_rate=learning_rate,
                        batch_size=batch_size, progress=progress, checkpoint=Path(checkpoint) if checkpoint else None)
    model.training_record = {**(model.training_record or {}), "adopted": {
        "from": str(Path(folder)), "labels_from": "id2label", "scheme": model.config.scheme,
        "sentences": len(sentences), "epochs": epochs, "context": context}}
    return model
