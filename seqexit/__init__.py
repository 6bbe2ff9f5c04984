"""seqexit: fast transformer sequence labeling by dynamic early exit.

The data flows one way: text -> words (`seqexit.data`) -> word pieces (`seqexit.pieces`) ->
layers with exits (`seqexit.model`, `seqexit.exits`) -> labels per word -> spans/tags.

The names below load on first use (PEP 562), so that `import seqexit` (and the CLI) stays
cheap: torch, transformers and the training stack load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Sentence": ".data", "read_conll": ".data", "read_conllu": ".data",
    "ExitPolicy": ".exits", "run_policy": ".exits",
    "ModelBundle": ".bundle", "load_model": ".bundle", "save_model": ".bundle",
    "MultiExitTagger": ".model", "TaggerConfig": ".model",
    "TaggedSentence": ".tagger", "Tagger": ".tagger", "open_tagger": ".tagger",
    "TrainConfig": ".training", "train": ".training", "train_joint": ".training",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .bundle import ModelBundle, load_model, save_model
    from .data import Sentence, read_conll, read_conllu
    from .exits import ExitPolicy, run_policy
    from .model import MultiExitTagger, TaggerConfig
    from .tagger import TaggedSentence, Tagger, open_tagger
    from .training import TrainConfig, train, train_joint


def __getattr__(name: str) -> Any:
    """Import the module behind a lazily exported name, and cache the name here."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
