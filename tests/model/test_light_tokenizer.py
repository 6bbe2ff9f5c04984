"""The light tokenizer (`seqexit.light_tokenizer`) gives transformers' pieces and ids for the BERT
folders it takes, and steps aside (None) for the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from seqexit import light_tokenizer
from seqexit.backbones import resolve_backbone
from seqexit.data import read_conll, read_conllu
from seqexit.pieces import WordPieceEncoder

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TRICKY = ["Apple", "APPLE", "naïve", "Café", "résumé", "東京", "北京大学", "😀", "a\u200bb", "\u0007", "", " ", "--",
          "U.S.", "don't", "1,000.50", "Straße", "ﬁne", "İstanbul", "x" * 120, "Ωmega", "\ufeffword", "tab\there"]


@pytest.fixture(scope="module")
def backbone() -> Path:
    return resolve_backbone("minilm-l6")


def test_same_pieces_and_ids_as_transformers(backbone):
    light, full = light_tokenizer.load(backbone), AutoTokenizer.from_pretrained(str(backbone), local_files_only=True)
    assert light is not None
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id", "model_max_length"):
        assert getattr(light, name) == getattr(full, name), name
    assert len(light) == len(full)
    words = list(TRICKY)
    if DATA.exists():  # every distinct word of the CoNLL-2003 and UD EWT test sets
        words += sorted({w for s in read_conll(DATA / "conll2003" / "eng.testb") for w in s.words})
        words += sorted({w for s in read_conllu(DATA / "ud_en_ewt" / "en_ewt-ud-test.conllu") for w in s.words})
    sentences = [words[i:i + 50] for i in range(0, len(words), 50)]
    assert WordPieceEncoder(light).word_pieces(sentences) == WordPieceEncoder(full).word_pieces(sentences)


def test_saved_files_load_in_transformers(backbone, tmp_path):
    light_tokenizer.load(backbone).save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert reloaded("Café in Paris")["input_ids"] == AutoTokenizer.from_pretrained(str(backbone))("Café in Paris")["input_ids"]


@pytest.mark.parametrize("change", ["cased config", "another class", "no special token", "broken json"])
def test_other_folders_are_left_to_transformers(backbone, tmp_path, change):
    for name in light_tokenizer.FILES:
        shutil.copyfile(backbone / name, tmp_path / name)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    if change == "cased config":  # transformers would rebuild the lowercasing normalizer
        config["do_lower_case"] = False
    elif change == "another class":
        config["tokenizer_class"] = "RobertaTokenizer"
    elif change == "no special token":
        config["cls_token"] = "[NOT-IN-VOCAB]"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    if change == "broken json":
        (tmp_path / "tokenizer.json").write_text("{not json")
    assert light_tokenizer.load(tmp_path) is None
