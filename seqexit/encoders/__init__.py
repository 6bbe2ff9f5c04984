"""Encoder adapters: expose each layer's parts so layers can run on a subset of tokens."""

from __future__ import annotations

from torch import nn

from .base import EncoderAdapter, LayerParts, attention, feed_forward
from .bert import BERT_FAMILY, BertFamilyAdapter
from .distilbert import DISTILBERT, DistilBertAdapter
from .mpnet import MPNET, MPNetAdapter

__all__ = ["EncoderAdapter", "LayerParts", "adapter_for", "attention", "feed_forward", "SUPPORTED_MODEL_TYPES"]

SUPPORTED_MODEL_TYPES = (*BERT_FAMILY, DISTILBERT, MPNET)


def adapter_for(encoder: nn.Module) -> EncoderAdapter:
    """The adapter for a Hugging Face encoder, chosen by its `config.model_type`."""
    model_type = encoder.config.model_type
    if model_type in BERT_FAMILY:
        return BertFamilyAdapter(encoder)
    if model_type == DISTILBERT:
        return DistilBertAdapter(encoder)
    if model_type == MPNET:
        return MPNetAdapter(encoder)
    raise ValueError(
        f"encoder type {model_type!r} is not supported yet; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )
