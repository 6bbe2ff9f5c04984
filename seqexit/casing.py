"""Casing features: give an uncased backbone back the capitalisation its tokenizer throws away.

An uncased tokenizer maps "Apple" and "apple" to the same pieces, yet capitalisation is the
strongest single cue for names. Every word gets one of a few casing classes; every piece of the
word adds that class's learned vector to its embedding. The vectors start at zero (the tagger
starts out exactly as the backbone) and live in the encoder module as `casing_embeddings`, so
they train, freeze and save with it.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

# class ids; 0 is [CLS]/[SEP]/padding
CASING_CLASSES = ("special", "lower", "title", "upper", "mixed", "digits", "other")
LEARNING_RATE_SCALE = 10.0  # new vectors from zero learn faster than the pretrained weights around them


@lru_cache(maxsize=1 << 16)  # a word's class never changes; tagging meets the same words again and again
def casing_class(word: str) -> int:
    """The casing class id of a word: lower, title ("Paris", "I"), upper ("NATO"), mixed
    ("iPhone", "McDonald"), digits (no letters, some digit) or other (punctuation, symbols)."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return CASING_CLASSES.index("digits" if any(c.isdigit() for c in word) else "other")
    if all(c.islower() for c in letters):
        return CASING_CLASSES.index("lower")
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return CASING_CLASSES.index("title")
    if all(c.isupper() for c in letters):
        return CASING_CLASSES.index("upper")
    return CASING_CLASSES.index("mixed")


def add_casing_embeddings(encoder: nn.Module, hidden_size: int) -> nn.Embedding:
    """Attach zero-initialised casing vectors to `encoder` (once) and return them."""
    if getattr(encoder, "casing_embeddings", None) is None:
        encoder.casing_embeddings = nn.Embedding(len(CASING_CLASSES), hidden_size)
        nn.init.zeros_(encoder.casing_embeddings.weight)
    return encoder.casing_embeddings


def is_casing_parameter(name: str) -> bool:
    return "casing_embeddings" in name


def with_casing(encoder: nn.Module, hidden: torch.Tensor, casing_ids: torch.Tensor | None) -> torch.Tensor:
    """hidden (batch, pieces, hidden) plus each piece's casing vector, when the encoder has them."""
    casing = getattr(encoder, "casing_embeddings", None)
    if casing is None:
        return hidden
    if casing_ids is None:
        raise ValueError("this model uses casing features: its batches need casing_ids (encode with casing=True)")
    return hidden + casing(casing_ids)
