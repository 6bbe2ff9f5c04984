"""Adopting a Hugging Face token classifier: full depth is the original, the lower exits learn
from it without labels, and bad folders are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForTokenClassification
from typer.testing import CliRunner

from cli.main import app
from seqexit.adopt import adopt, adopted_tagger, label_scheme
from seqexit.bundle import load_model, save_model
from seqexit.data.schemes import decode_spans
from seqexit.exits import ExitPolicy, exit_batch, run_policy

from tests.conftest import EXIT_LABELS, EXIT_SENTENCES, VOCAB, make_backbone

runner = CliRunner()


def make_token_classifier(folder: Path, labels: list[str] = EXIT_LABELS, layers: int = 3, seed: int = 3) -> Path:
    """A random BertForTokenClassification saved the way a user's fine-tuned tagger is."""
    make_backbone(folder, layers=layers)  # tokenizer files (and a plain encoder, replaced below)
    torch.manual_seed(seed)
    config = BertConfig.from_pretrained(str(folder))
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.initializer_range = 0.3  # layers that change the states a lot, as a trained model's do
    model = BertForTokenClassification(config)
    with torch.no_grad():  # a trained classifier's scale: labels that differ from word to word
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    return make_token_classifier(tmp_path_factory.mktemp("hf-ner"))


def hugging_face_labels(folder: Path, model, sentences) -> list[list[str]]:
    """The original model's own labels: its logits at each word's first piece, argmax."""
    original = BertForTokenClassification.from_pretrained(str(folder)).eval()
    chunks = [c[0] for c in model.pieces.encode(sentences)]
    batch = model.pieces.collate(chunks)
    with torch.no_grad():
        logits = original(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
    first = logits.gather(1, batch.word_starts[..., None].expand(-1, -1, logits.shape[-1])).argmax(-1)
    return [[original.config.id2label[int(i)] for i in row[:n]] for row, n in zip(first, batch.word_mask.sum(1).tolist())]


def test_full_depth_gives_the_original_labels_and_keeps_its_weights(hf_folder):
    model = adopt(hf_folder, EXIT_SENTENCES * 4, epochs=1)
    run = run_policy(model, EXIT_SENTENCES, ExitPolicy())
    assert [r.labels(model) for r in run.sentences] == hugging_face_labels(hf_folder, model, EXIT_SENTENCES)
    original = BertForTokenClassification.from_pretrained(str(hf_folder))
    for name, tensor in original.bert.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(model.encoder.state_dict()[name], tensor), name
    assert torch.equal(model.exits[-1].linear.weight, original.classifier.weight)
    assert model.labels == EXIT_LABELS and model.config.scheme == "iob2" and model.config.task == "ner"


def test_the_lower_exits_learn_the_last_exit_from_text_alone(hf_folder):
    before = adopted_tagger(hf_folder)
    sentences = EXIT_SENTENCES * 8
    after = adopt(hf_folder, sentences, epochs=15, batch_size=8, learning_rate=1e-2, context=1)

    def distance_to_last_exit(model) -> float:
        """Mean KL from the last exit's distribution to each lower exit's, over the words."""
        batch = model.pieces.collate([c[0] for c in model.pieces.encode(EXIT_SENTENCES)])
        with torch.no_grad():
            logits = model(batch)[:, batch.word_mask]  # (exits, words, labels)
        last = logits[-1].log_softmax(-1)
        return float(sum(torch.nn.functional.kl_div(exit_.log_softmax(-1), last, log_target=True, reduction="batchmean")
                         for exit_ in logits[:-1]))

    assert distance_to_last_exit(after) < 0.5 * distance_to_last_exit(before)
    assert [head.shape.context for head in after.exits] == [1, 1, 0]
    assert after.training_record["adopted"]["labels_from"] == "id2label"


def test_an_adopted_model_saves_loads_and_tags_through_the_cli(hf_folder, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in EXIT_SENTENCES * 3) + "\n")
    out = tmp_path / "adopted"
    result = runner.invoke(app, ["adopt", str(hf_folder), "-o", str(out), "--unlabelled", str(text), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    loaded = load_model(out)
    expected = hugging_face_labels(hf_folder, loaded, EXIT_SENTENCES)
    assert [r.labels(loaded) for r in run_policy(loaded, EXIT_SENTENCES, ExitPolicy()).sentences] == expected
    tagged = runner.invoke(app, ["tag", str(text), "--model", str(out), "--mode", "full", "-f", "conll"])
    assert tagged.exit_code == 0, tagged.output
    rows = [line.split() for line in tagged.output.splitlines() if line.strip()]
    written = [row[-1] for row in rows[:len(EXIT_SENTENCES[0])]]  # the writer's IOB2: the same spans
    assert decode_spans(written, "iob2") == decode_spans(expected[0], "iob2")


def test_label_free_calibration_measures_drops_against_full_depth(hf_folder, tmp_path):
    model = adopt(hf_folder, EXIT_SENTENCES * 4, epochs=1)
    folder = save_model(model, tmp_path / "m")
    text = tmp_path / "dev.txt"
    text.write_text("\n".join(" ".join(s) for s in EXIT_SENTENCES * 2) + "\n")
    result = runner.invoke(app, ["calibrate", str(folder), str(text), "--against-full-depth", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["full_score"] == pytest.approx(100.0)
    for preset in report["presets"].values():
        assert preset["score"] >= 100.0 - preset["max_drop"] - 1e-9 or preset["fallback"]
        assert "the model's own full depth" in preset["data"]
    info = runner.invoke(app, ["info", str(folder)])
    assert "labels: the model's own full depth" in info.output
    assert f"adopted: encoder and last exit taken unchanged from the Hugging Face token classifier {hf_folder}" in info.output


@pytest.mark.parametrize("labels, scheme", [
    (["O", "B-PER", "I-PER"], "iob2"), (["O", "I-PER", "I-LOC"], "iob2"), (["O", "S-PER", "B-PER", "E-PER", "I-PER"], "iobes"),
    (["O", "U-LOC", "B-LOC", "L-LOC"], "bilou"), (["NOUN", "VERB", "ADJ"], None),
])
def test_the_label_scheme_is_read_from_the_labels(labels, scheme):
    assert label_scheme(labels, "config.json") == scheme


def _break(folder: Path, how: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    if how == "no id2label":
        config.pop("id2label"), config.pop("label2id")
    elif how == "unknown family":
        config["model_type"] = "deberta-v2"
    elif how == "mixed labels":
        config["id2label"] = {"0": "O", "1": "B-PER", "2": "NOUN", **{str(i): f"X{i}" for i in range(3, 7)}}
    elif how == "no weights":
        (folder / "model.safetensors").unlink()
    elif how == "tokenizer too large":
        vocab = (folder / "vocab.txt").read_text().splitlines()
        (folder / "vocab.txt").write_text("\n".join(vocab + [f"extra{i}" for i in range(500)]) + "\n")
        (folder / "tokenizer.json").unlink(missing_ok=True)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("how, says", [
    ("no id2label", "no id2label"), ("unknown family", "supported: bert"), ("mixed labels", "cannot be told"),
    ("no weights", "no model.safetensors"), ("tokenizer too large", "do not belong together"),
])
def test_bad_folders_are_clear_errors_and_leave_nothing(tmp_path, how, says):
    folder = make_token_classifier(tmp_path / "hf")
    _break(folder, how)
    text = tmp_path / "text.txt"
    text.write_text("john smith was in berlin .\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["adopt", str(folder), "-o", str(out), "--unlabelled", str(text)])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    with pytest.raises((ValueError, FileNotFoundError), match=says):
        adopted_tagger(folder)


def test_an_adopted_model_compacts_against_its_source_and_serves_in_spacy(hf_folder, tmp_path):
    import spacy
    from spacy.tokens import Doc

    model = adopt(hf_folder, EXIT_SENTENCES * 4, epochs=1)
    full = save_model(model, tmp_path / "full")
    compact = tmp_path / "compact"
    result = runner.invoke(app, ["compact", str(full), str(compact), "--backbone", str(hf_folder)])
    assert result.exit_code == 0, result.output
    expected = hugging_face_labels(hf_folder, model, EXIT_SENTENCES)
    nlp = spacy.blank("en")
    nlp.add_pipe("seqexit_ner", config={"model": str(compact), "policy": ExitPolicy().to_dict()})
    docs = [nlp(Doc(nlp.vocab, words=list(words))) for words in EXIT_SENTENCES]
    for doc, labels in zip(docs, expected):
        spans = [(s.start, s.end, s.label) for s in decode_spans(labels, "iob2")]
        assert [(e.start, e.end, e.label_) for e in doc.ents] == spans


def make_distilbert_classifier(folder: Path, labels: list[str] = EXIT_LABELS, layers: int = 3) -> Path:
    """A random DistilBertForTokenClassification folder (BERT's word pieces, its own layer names)."""
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    make_backbone(folder, layers=layers)  # tokenizer files
    torch.manual_seed(5)
    config = DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=layers, n_heads=4, hidden_dim=64,
                              max_position_embeddings=64, initializer_range=0.3, id2label=dict(enumerate(labels)),
                              label2id={label: i for i, label in enumerate(labels)})
    return save_scrambled(DistilBertForTokenClassification(config), folder)


def save_scrambled(model, folder: Path) -> Path:
    """Save `model` over the encoder `make_backbone` wrote, with a trained classifier's scale and
    every LayerNorm its own (at their init they are all alike, and a swapped one would not show)."""
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        for name, parameter in model.named_parameters():
            if "norm" in name.lower():
                parameter.add_(torch.randn_like(parameter) * 0.3)
    (folder / "model.safetensors").unlink()
    (folder / "config.json").unlink()
    model.save_pretrained(str(folder))
    return folder


def test_a_distilbert_tagger_is_adopted_exactly(tmp_path):
    from transformers import DistilBertForTokenClassification

    folder = make_distilbert_classifier(tmp_path / "distil")
    model = adopt(folder, EXIT_SENTENCES * 4, epochs=1)
    assert type(model.adapter).__name__ == "DistilBertAdapter"
    original = DistilBertForTokenClassification.from_pretrained(str(folder)).eval()
    batch = model.pieces.collate([c[0] for c in model.pieces.encode(EXIT_SENTENCES)])
    with torch.no_grad():
        theirs = original(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
        theirs = theirs.gather(1, batch.word_starts[..., None].expand(-1, -1, theirs.shape[-1]))  # (batch, words, labels)
        ours = model(batch, exits="last")[0]
        tokee = exit_batch(model, batch, ExitPolicy.tokee(0.0, window=1))  # threshold 0: nothing halts
    mask = batch.word_mask
    assert (ours - theirs)[mask].abs().max() <= 1e-4
    assert (tokee.logits - theirs)[mask].abs().max() <= 1e-4
    assert torch.equal(tokee.label_ids[mask], theirs.argmax(-1)[mask])
    with torch.no_grad():  # halting some words runs the packed layers: still one label per word
        some = exit_batch(model, batch, ExitPolicy.tokee(0.5, window=0))
    assert (some.exit_layer[mask] >= 1).all() and (some.exit_layer[~mask] == 0).all()
    saved = save_model(model, tmp_path / "saved")
    loaded = load_model(saved)
    with torch.no_grad():
        assert torch.equal(loaded(batch, exits="last")[0][mask].argmax(-1), ours[mask].argmax(-1))


def make_mpnet_classifier(folder: Path, labels: list[str] = EXIT_LABELS, layers: int = 3) -> Path:
    """A random MPNetForTokenClassification folder: relative position bias on every layer."""
    from transformers import MPNetConfig, MPNetForTokenClassification

    make_backbone(folder, layers=layers)  # tokenizer files
    torch.manual_seed(7)
    config = MPNetConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=130, initializer_range=0.3,
                         id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    model = MPNetForTokenClassification(config)
    with torch.no_grad():
        model.mpnet.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)  # a bias that moves attention
    return save_scrambled(model, folder)


def test_an_mpnet_tagger_is_adopted_exactly_and_halting_reads_the_queries_positions(tmp_path):
    from transformers import MPNetForTokenClassification

    folder = make_mpnet_classifier(tmp_path / "mpnet")
    model = adopted_tagger(folder)
    assert type(model.adapter).__name__ == "MPNetAdapter"
    original = MPNetForTokenClassification.from_pretrained(str(folder)).eval()
    batch = model.pieces.collate([c[0] for c in model.pieces.encode(EXIT_SENTENCES)])
    mask = batch.word_mask
    with torch.no_grad():
        theirs = original(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
        theirs = theirs.gather(1, batch.word_starts[..., None].expand(-1, -1, theirs.shape[-1]))  # (batch, words, labels)
        ours = model(batch, exits="last")[0]
        tokee = exit_batch(model, batch, ExitPolicy.tokee(0.0, window=1))
        # the packed layer on half the pieces equals the full layer there: the bias follows each query
        hidden = model.adapter.embed(batch.input_ids)
        torch.manual_seed(3)
        active = batch.attention_mask & (torch.rand(batch.attention_mask.shape) < 0.5)
        full = model.adapter.run_layer(1, hidden, batch.attention_mask)
        packed = model.adapter.run_layer_active(1, hidden.clone(), batch.attention_mask, active)
    assert (ours - theirs)[mask].abs().max() <= 1e-4
    assert (tokee.logits - theirs)[mask].abs().max() <= 1e-4
    assert torch.equal(tokee.label_ids[mask], theirs.argmax(-1)[mask])
    assert (packed - full)[active].abs().max() <= 1e-5
    saved = save_model(model, tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(load_model(saved)(batch, exits="last")[0][mask].argmax(-1), ours[mask].argmax(-1))
    from seqexit.quantize import quantize_model

    int8 = quantize_model(model, "int8")  # the int8 layers keep the position bias
    assert all(parts.position_bias is not None for parts in int8.adapter.layers)


def test_distilled_ssft_adapts_an_adopted_model_and_its_tags_carry_no_weight(tmp_path):
    """`seqexit train --init ADOPTED --ssft-distill 1`: the step that teaches an adopted encoder
    to work with halted words' copied states. Its targets are the adopted model's own output,
    so two training files with the same words and different tags give the same weights."""
    from seqexit.data import Sentence
    from seqexit.output import write_conll

    folder = make_mpnet_classifier(tmp_path / "mpnet")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in EXIT_SENTENCES * 2) + "\n")
    adopted = tmp_path / "adopted"
    assert runner.invoke(app, ["adopt", str(folder), "-o", str(adopted), "--unlabelled", str(text), "--epochs", "1"]).exit_code == 0
    start = load_model(adopted)
    own = [r.labels(start) for r in run_policy(start, EXIT_SENTENCES, ExitPolicy()).sentences]
    sentences = [Sentence(words=list(s)) for s in EXIT_SENTENCES]
    trained = {}
    for name, tags in (("own", own), ("all-o", [["O"] * len(s) for s in EXIT_SENTENCES])):
        data = tmp_path / f"{name}.conll"
        write_conll(sentences, tags, data)
        result = runner.invoke(app, ["train", "--init", str(adopted), "--train", str(data), "--dev", str(data), "-o",
                                     str(tmp_path / name), "--ssft-distill", "1", "--ssft-epochs", "1",
                                     "--ssft-tolerance", "100", "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        assert "(adopted, SSFT)" in result.output
        trained[name] = load_model(tmp_path / name / "model")
    model = trained["own"]
    assert type(model.adapter).__name__ == "MPNetAdapter"
    assert any(not torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(), start.encoder.state_dict().values()))
    for (name, a), b in zip(model.state_dict().items(), trained["all-o"].state_dict().values()):
        assert torch.equal(a, b), name
    record = model.training_record
    assert record["adopted"]["from"] == str(folder)
    assert record["stages"][-1]["config"]["self_sampling"]["distill_share"] == 1.0
    info = runner.invoke(app, ["info", str(tmp_path / "own" / "model")])
    assert "adopted: encoder and last exit taken unchanged" in info.output and "100% of its targets" in info.output


def test_an_interrupted_adoption_resumes_to_the_same_exits(hf_folder, tmp_path, monkeypatch):
    import seqexit.training.context_exits as context_exits

    sentences = EXIT_SENTENCES * 6
    settings = {"epochs": 2, "batch_size": 4, "learning_rate": 1e-2}
    whole = adopt(hf_folder, sentences, **settings)
    real_loss, calls = context_exits._loss, {"n": 0}

    def loss_then_interrupt(model, batch):
        calls["n"] += 1
        if calls["n"] == 11:  # epoch 2, after the checkpoint at its 2nd batch
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(context_exits, "_loss", loss_then_interrupt)
    checkpoint = tmp_path / "state"
    monkeypatch.setattr(context_exits.train_context_exits, "__kwdefaults__",
                        {**context_exits.train_context_exits.__kwdefaults__, "checkpoint_every": 2})
    with pytest.raises(KeyboardInterrupt):
        adopt(hf_folder, sentences, checkpoint=checkpoint, **settings)
    assert json.loads((checkpoint / "state.json").read_text())["progress"]["epoch"] == 1
    monkeypatch.setattr(context_exits, "_loss", real_loss)
    resumed = adopt(hf_folder, sentences, checkpoint=checkpoint, **settings)
    for a, b in zip(whole.exits, resumed.exits):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.allclose(x, y, atol=1e-6), name
    with pytest.raises(ValueError, match="other settings"):
        adopt(hf_folder, sentences[:-1], checkpoint=checkpoint, **settings)


def make_roberta_classifier(folder: Path, add_prefix_space: bool, labels: list[str] = EXIT_LABELS) -> Path:
    """A random RobertaForTokenClassification with a byte-level BPE tokenizer built by hand: the
    256 byte symbols, plus merges for a few words with and without the leading-space mark, so
    that a word's pieces differ by whether it is read as following a space."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaConfig, RobertaForTokenClassification, RobertaTokenizerFast

    folder.mkdir(parents=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in sorted(ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges = []
    for word in ("john", "smith", "berlin", "paris", "said"):
        for symbols in (["\u0120", *word], list(word)):  # Ġ: the byte-level mark of a leading space
            token = symbols[0]
            for char in symbols[1:]:
                merges.append((token, char))
                token += char
                vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizerFast(vocab=vocab, merges=list(dict.fromkeys(merges)), add_prefix_space=add_prefix_space)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(5)
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=1, initializer_range=0.3,
                           id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    model = RobertaForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("add_prefix_space", [True, False])
def test_a_roberta_tagger_reads_words_as_hugging_face_reads_pre_split_words(tmp_path, add_prefix_space):
    """Hugging Face reads pre-split words with a leading space each (RoBERTa-style tokenizers
    need add_prefix_space=True for it); a tokenizer saved without it still reads them so."""
    from transformers import AutoTokenizer, RobertaForTokenClassification

    folder = make_roberta_classifier(tmp_path / "roberta", add_prefix_space)
    model = adopted_tagger(folder)
    reference = AutoTokenizer.from_pretrained(str(folder), add_prefix_space=True)
    encoded = reference(EXIT_SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
    chunks = [c[0] for c in model.pieces.encode(EXIT_SENTENCES)]
    assert [c.input_ids for c in chunks] == [[i for i, m in zip(row, mask) if m] for row, mask in
                                            zip(encoded["input_ids"].tolist(), encoded["attention_mask"].tolist())]
    assert any(len(set(ids)) < len(ids) or len(ids) > 4 for ids in [c.input_ids for c in chunks])
    original = RobertaForTokenClassification.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        logits = original(**encoded).logits
    firsts = [[encoded.word_ids(row).index(w) for w in range(len(words))] for row, words in enumerate(EXIT_SENTENCES)]
    expected = [[original.config.id2label[int(logits[row, p].argmax())] for p in positions]
                for row, positions in enumerate(firsts)]
    run = run_policy(model, EXIT_SENTENCES, ExitPolicy())
    assert [r.labels(model) for r in run.sentences] == expected
