"""A seqexit model's full-depth path as a plain Hugging Face token classifier.

`to_hf_token_classifier(model, folder)` writes a `BertForTokenClassification` folder (encoder
weights, the last exit as `classifier`, labels in `id2label`, the tokenizer) that
`transformers.pipeline("token-classification")` loads: the ordinary way to serve the same
fine-tuned model, and the baseline early exit is measured against. Lower exits are dropped.
"""

from __future__ import annotations

from pathlib import Path

from .model import MultiExitTagger

EXPORTABLE = ("bert",)


def to_hf_token_classifier(model: MultiExitTagger, folder: str | Path) -> Path:
    """Write `model`'s encoder and last exit as a BertForTokenClassification folder."""
    from transformers import AutoConfig, BertForTokenClassification

    backbone = dict(model.config.backbone_config)
    model_type = backbone.pop("model_type", None)
    if model_type not in EXPORTABLE:
        raise ValueError(f"only {', '.join(EXPORTABLE)} encoders export to a token classifier, not {model_type!r}")
    if model.config.casing:
        raise ValueError("this model uses casing features, which a plain Hugging Face token classifier has no place for")
    labels = model.labels
    for key in ("id2label", "label2id", "num_labels", "architectures"):
        backbone.pop(key, None)  # the backbone's own (sentence-embedding) head settings
    config = AutoConfig.for_model(model_type, **backbone, id2label=dict(enumerate(labels)),
                                  label2id={label: i for i, label in enumerate(labels)})
    classifier = BertForTokenClassification(config)
    state = {f"bert.{k}": v for k, v in model.encoder.state_dict().items()}
    if not model.exits[-1].shape.plain:
        raise ValueError(f"the last exit reads {model.exits[-1].shape.describe()}: only a linear last exit exports as a classifier")
    last = model.exits[-1].linear
    state |= {"classifier.weight": last.weight.detach(), "classifier.bias": last.bias.detach()}
    missing, unexpected = classifier.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("bert.pooler.")]:
        raise ValueError(f"weights do not fit BertForTokenClassification: missing {missing}, unexpected {unexpected}")
    folder = Path(folder)
    classifier.save_pretrained(str(folder))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))
    return folder
