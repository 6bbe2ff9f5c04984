import pytest
import torch

from seqexit.bundle import save_model
from seqexit import Sentence, Tagger
from seqexit.model import MultiExitTagger


@pytest.fixture()
def tagger(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    save_model(MultiExitTagger.from_backbone(tiny_backbone, ["O", "B-PER", "I-PER"]), tmp_path / "m")
    return Tagger.load(tmp_path / "m", batch_size=2)


def test_every_word_gets_one_label_in_order(tagger):
    sentences = [["john", "smith", "said"], [], ["paris"], ["a"] * 150, ["the", "bank"]]
    results = tagger.tag(sentences)
    assert [r.words for r in results] == sentences
    assert [len(r.labels) for r in results] == [len(s) for s in sentences]
    assert all(label in tagger.labels for r in results for label in r.labels)
    assert all(0.0 < c <= 1.0 for r in results for c in r.confidence)


def test_batching_does_not_change_labels(tagger):
    sentences = [["john", "smith", "said"], ["paris", "is", "in", "france"], ["the", "bank"]]
    one_by_one = [tagger.tag([s])[0].labels for s in sentences]
    assert [r.labels for r in tagger.tag(sentences)] == one_by_one


def test_static_exit_layer_is_reported(tagger):
    [result] = tagger.tag([Sentence(["john", "smith"])], exit_layer=2)
    assert result.exit_layers == [2, 2]


def test_a_tokee_policy_reports_each_words_exit_layer(tagger):
    from seqexit import ExitPolicy

    sentences = [["john", "smith", "said"], ["paris", "is", "in", "france"]]
    everything_at_2 = ExitPolicy.tokee([0.0, 2.0, 0.0, 0.0])
    results = tagger.tag(sentences, policy=everything_at_2)
    assert [r.exit_layers for r in results] == [[2] * 3, [2] * 4]
    assert [r.labels for r in results] == [r.labels for r in tagger.tag(sentences, exit_layer=2)]
    default = Tagger(tagger.model, policy=ExitPolicy.tokee(2.0)).tag(sentences)
    assert all(layer == 1 for r in default for layer in r.exit_layers)


def test_empty_word_is_refused_with_its_place(tagger):
    with pytest.raises(ValueError, match="in.txt:7: word 1"):
        tagger.tag([Sentence(["john", " "], source="in.txt", lines=[6, 7])])


def test_raw_text_is_split_and_tagged(tagger):
    results = tagger.tag_text("John Smith said it. Paris was new.")
    assert [r.words for r in results] == [["John", "Smith", "said", "it", "."], ["Paris", "was", "new", "."]]
    assert [len(r.labels) for r in results] == [5, 4]
