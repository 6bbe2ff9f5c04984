"""Scorers for what the seqexit components write besides spaCy's own attributes: a chunking
model's chunks in `doc.spans["chunks"]` (found by spaCy through the `spacy_scorers` entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

from .component import CHUNKS_KEY


def _chunks(doc: Doc, key: str) -> list:
    return list(doc.spans.get(key, []))


def chunk_score(examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
    """chunks_p, chunks_r, chunks_f and chunks_per_type: labelled span P/R/F of doc.spans["chunks"]."""
    return Scorer.score_spans(examples, CHUNKS_KEY, getter=_chunks, labeled=True, allow_overlap=True)


@registry.scorers("seqexit.chunk_scorer.v1")
def make_chunk_scorer() -> Callable[..., dict[str, Any]]:
    """For a chunking model in seqexit_ner: `scorer = {"@scorers": "seqexit.chunk_scorer.v1"}`."""
    return chunk_score
