"""Shared fixtures: a tiny random BERT with a real (fast) word-piece tokenizer, built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from seqexit.model import MultiExitTagger

torch.set_num_threads(1)

# Ray Data 2.60 starts a metrics poller thread for its usage statistics that never stops; offline
# it logs a traceback every 10 s, and on Python 3.11 formatting one races with `ast.parse` in the
# main thread (SystemError: AST constructor recursion depth mismatch, seen in test_layout on CI).
# The tests opt out of Ray's usage statistics, which also keeps them from reaching for the network.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

WORDS = (
    "the a of in on and to is was said john mary smith paris london berlin bank united nations "
    "germany france european union company reuters monday tuesday it he she they we new york"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-"] + WORDS + list("abcdefghijklmnopqrstuvwxyz0123456789") + [
    f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"
]


def make_backbone(folder: Path, layers: int = 4, hidden: int = 32, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=2 * hidden, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 4-layer, 32-wide random BERT folder with a 100-piece vocabulary."""
    return make_backbone(tmp_path_factory.mktemp("tiny-bert"))


EXIT_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
EXIT_SENTENCES = [
    ["john", "smith", "was", "in", "berlin", "on", "monday", "."],
    ["reuters"],
    ["the", "european", "union", "and", "the", "united", "nations", "said", "it", "was", "new"],
    ["mary", "xqzw", "paris"],
    ["germany", ",", "france", "and", "london", "-", "based", "company", "abcdef"],
]


@pytest.fixture(scope="session")
def make_tagger(tmp_path_factory):
    """make_tagger(layers) -> an eval-mode MultiExitTagger on a random BERT of that depth."""
    cache: dict[int, MultiExitTagger] = {}

    def make(layers: int = 4) -> MultiExitTagger:
        if layers not in cache:
            folder = make_backbone(tmp_path_factory.mktemp(f"bert-{layers}"), layers=layers, seed=layers)
            torch.manual_seed(layers)
            model = MultiExitTagger.from_backbone(folder, EXIT_LABELS)
            with torch.no_grad():
                for head in model.exits:
                    head.linear.weight.mul_(8.0)  # random exits are near-uniform; spread their confidence
            cache[layers] = model.eval()
        return cache[layers]

    return make


@pytest.fixture()
def sentences():
    return [list(s) for s in EXIT_SENTENCES]
