"""`train`'s defaults are the measured best: recipe distill, and casing features exactly when the
backbone is uncased (detected from its tokenizer); explicit arguments still win."""

from __future__ import annotations

import shutil

import pytest
from transformers import BertTokenizerFast

from seqexit.training import train
from seqexit.training.recipes import DEFAULT_RECIPE, backbone_is_uncased, default_casing


@pytest.fixture(scope="module")
def cased_backbone(tiny_backbone, tmp_path_factory):
    """The tiny backbone with a cased tokenizer (same vocabulary, do_lower_case=False)."""
    folder = tmp_path_factory.mktemp("tiny-cased")
    for item in tiny_backbone.iterdir():
        if item.is_file() and "token" not in item.name and item.name != "vocab.txt":
            shutil.copy(item, folder / item.name)
    shutil.copy(tiny_backbone / "vocab.txt", folder / "vocab.txt")
    BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=False).save_pretrained(str(folder))
    return folder


def test_casing_is_detected_from_the_tokenizer(tiny_backbone, cased_backbone):
    assert backbone_is_uncased(tiny_backbone) and default_casing(tiny_backbone)
    assert not backbone_is_uncased(cased_backbone) and not default_casing(cased_backbone)


def run(corpus, small_config, tmp_path, **kwargs):
    return train(corpus(8, 40), corpus(4, 41), config=small_config(epochs=1), ssft=False, output_dir=tmp_path,
                 progress=False, **kwargs)


def test_defaults_are_distill_and_casing_for_an_uncased_backbone(tiny_backbone, corpus, small_config, tmp_path):
    assert DEFAULT_RECIPE == "distill"
    outcome = run(corpus, small_config, tmp_path, backbone=tiny_backbone)
    assert outcome.record["recipe"] == "distill" and list(outcome.stages) == ["ordinary fine-tune", "self-distillation"]
    assert outcome.model.config.casing is True and outcome.record["train_options"][0]["casing"] is True


def test_a_cased_backbone_gets_no_casing_and_explicit_arguments_win(cased_backbone, tiny_backbone, corpus,
                                                                     small_config, tmp_path):
    assert run(corpus, small_config, tmp_path / "a", backbone=cased_backbone).model.config.casing is False
    assert run(corpus, small_config, tmp_path / "b", backbone=cased_backbone, casing=True).model.config.casing is True
    explicit = run(corpus, small_config, tmp_path / "c", backbone=tiny_backbone, casing=False, recipe="two-stage")
    assert explicit.model.config.casing is False and explicit.record["recipe"] == "two-stage"
