"""spaCy component fixtures: tiny random seqexit models saved to folders (untrained: the
plumbing between spaCy and the engine is under test, not accuracy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from seqexit.bundle import save_model
from seqexit.model import MultiExitTagger

# Universal POS tags and Penn Treebank tags side by side: pos_ must get only the former.
MIXED_POS = ["NOUN", "VERB", "DET", "PROPN", "PUNCT", "NN", "VBD", "DT"]
CHUNKS = ["O", "B-NP", "I-NP", "B-VP", "I-VP"]


def _tiny(backbone: Path, labels: list[str], task: str, scheme: str | None) -> MultiExitTagger:
    """A seeded tagger whose random exits are spread out (as in `make_tagger`), so that labels vary."""
    torch.manual_seed(0)
    model = MultiExitTagger.from_backbone(backbone, labels, task=task, scheme=scheme)
    with torch.no_grad():
        for head in model.exits:
            head.linear.weight.mul_(8.0)
    return model.eval()


@pytest.fixture(scope="session")
def spacy_ner_model(make_tagger, tmp_path_factory) -> Path:
    """A saved 4-layer NER tagger (labels O, B-/I- PER, LOC, ORG; max 64 word pieces)."""
    return save_model(make_tagger(4), tmp_path_factory.mktemp("spacy-ner-model"))


@pytest.fixture(scope="session")
def spacy_pos_model(tiny_backbone, tmp_path_factory) -> Path:
    """A saved 4-layer POS tagger whose labels mix UPOS and PTB tags."""
    return save_model(_tiny(tiny_backbone, MIXED_POS, "pos", None), tmp_path_factory.mktemp("spacy-pos-model"))


@pytest.fixture(scope="session")
def spacy_chunk_model(tiny_backbone, tmp_path_factory) -> Path:
    """A saved 4-layer chunker (task "chunk", IOB2 NP/VP)."""
    return save_model(_tiny(tiny_backbone, CHUNKS, "chunk", "iob2"), tmp_path_factory.mktemp("spacy-chunk-model"))


@pytest.fixture()
def model_copy(tmp_path):
    """copy(folder) -> a private copy of a model folder (to write presets into, or delete)."""

    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / f"copy-{folder.name}"))

    return copy
