import datasets
import pytest

from seqexit.data import DataError, Sentence, from_hf_dataset, to_hf_dataset


def test_round_trip():
    sentences = [Sentence(["John", "Smith"], ["B-PER", "I-PER"], "a.conll", [1, 2]), Sentence(["hi"], ["O"], "a.conll", [4])]
    back = from_hf_dataset(to_hf_dataset(sentences))
    assert [(s.words, s.tags) for s in back] == [(s.words, s.tags) for s in sentences]


def test_class_label_ids_like_the_hub_conll2003():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
    })
    ds = datasets.Dataset.from_dict({"tokens": [["John", "Smith", "in", "Paris"]], "ner_tags": [[1, 2, 0, 3]]}, features=features)
    [sentence] = from_hf_dataset(ds)
    assert sentence.tags == ["B-PER", "I-PER", "O", "B-LOC"]


def test_pos_strings_stay_as_they_are():
    ds = datasets.Dataset.from_dict({"tokens": [["I", "run"]], "pos_tags": [["PRON", "VERB"]]})
    [sentence] = from_hf_dataset(ds, scheme=None)
    assert sentence.tags == ["PRON", "VERB"]


def test_unlabelled_class_label_id_is_an_error_at_its_row():
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
    })
    ds = datasets.Dataset.from_dict({"tokens": [["a"], ["John", "b"]], "ner_tags": [[0], [1, -1]]}, features=features)
    with pytest.raises(DataError, match="tag id -1") as caught:
        from_hf_dataset(ds, name="toy")
    assert str(caught.value).startswith("<datasets:toy>:2:")


def test_empty_token_is_an_error():
    ds = datasets.Dataset.from_dict({"tokens": [["a", " "]], "tags": [["O", "O"]]})
    with pytest.raises(DataError, match="empty or missing token"):
        from_hf_dataset(ds)
