"""seqexit: fast transformer sequence labeling by dynamic early exit.

The data flows one way: text -> words (`seqexit.data`) -> word pieces (`seqexit.pieces`) ->
layers with exits (`seqexit.model`, `seqexit.exits`) -> labels per word -> spans/tags.
"""

from .data import Sentence, read_conll, read_conllu
from .exits import ExitPolicy, run_policy
from .bundle import ModelBundle, load_model, save_model
from .model import MultiExitTagger, TaggerConfig
from .tagger import TaggedSentence, Tagger, open_tagger
from .training import TrainConfig, train, train_joint

__version__ = "0.1.0"

__all__ = [
    "ExitPolicy",
    "ModelBundle",
    "MultiExitTagger",
    "Sentence",
    "TaggedSentence",
    "Tagger",
    "TaggerConfig",
    "TrainConfig",
    "load_model",
    "open_tagger",
    "read_conll",
    "read_conllu",
    "run_policy",
    "save_model",
    "train",
    "train_joint",
]
