"""Model folders are untrusted input (issue 21): loading one never runs code from it, and every
damaged, tampered or mismatched file is a clear ValueError/FileNotFoundError naming the file,
never a crash, a deep traceback or a gigantic allocation."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import BertTokenizerFast
from typer.testing import CliRunner

from cli.main import app
from seqexit.backbones import check_backbone_config, estimate_parameters
from seqexit.bundle import load_model, read_config, save_model
from seqexit.exits.learned import LearnedExitHeads
from seqexit.model import MultiExitTagger

from tests.conftest import VOCAB, make_backbone

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    return make_backbone(tmp_path_factory.mktemp("untrusted-bert"), layers=2, hidden=32)


@pytest.fixture(scope="module")
def saved(backbone, tmp_path_factory) -> dict[str, Path]:
    """A full folder (with learned exit heads and temperatures) and a compact one."""
    model = MultiExitTagger.from_backbone(backbone, LABELS)
    model.learned_exits = LearnedExitHeads(model.adapter.hidden_size, model.num_layers)
    model.exit_temperatures = [1.0] * model.num_layers
    full = save_model(model, tmp_path_factory.mktemp("full") / "m")
    compact = save_model(model, tmp_path_factory.mktemp("compact") / "m", compact_against=str(backbone))
    return {"full": full, "compact": compact}


@pytest.fixture()
def full(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved["full"], tmp_path / "full"))


@pytest.fixture()
def compact(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved["compact"], tmp_path / "compact"))


def refuses(folder, error=ValueError, names: str = ""):
    """load_model(folder) raises `error` whose message names `names` (a file or a field)."""
    with pytest.raises(error) as caught:
        load_model(folder)
    assert names in str(caught.value), str(caught.value)
    assert type(caught.value) is error or isinstance(caught.value, error)
    return str(caught.value)


def edit_json(path: Path, **changes) -> None:
    raw = json.loads(path.read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            raw[outer][inner] = value
        else:
            raw[key] = value
    path.write_text(json.dumps(raw))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


class WritesMarker:
    """A pickle that runs code when unpickled: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_evil_pickle(path: Path, marker: Path) -> None:
    probe = marker.with_name("probe")
    pickle.loads(pickle.dumps(WritesMarker(probe)))  # the payload does run when unpickled
    assert probe.exists()
    with open(path, "wb") as out:
        pickle.dump({"embeddings.word_embeddings.weight": WritesMarker(marker)}, out)


def test_the_untouched_folders_load(saved):
    assert load_model(saved["full"]).learned_exits is not None
    assert load_model(saved["compact"]).num_layers == 2


# --- damaged weights files --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.safetensors", "learned_exits.safetensors"])
def test_truncated_weights(full, name):
    truncate(full / name)
    refuses(full, ValueError, str(full / name))


def test_truncated_delta(compact):
    truncate(compact / "delta.safetensors")
    refuses(compact, ValueError, str(compact / "delta.safetensors"))


@pytest.mark.parametrize("header", [b"\xff" * 8, (10**15).to_bytes(8, "little"), b""])
def test_tampered_header(full, header):
    data = (full / "model.safetensors").read_bytes()
    (full / "model.safetensors").write_bytes(header + data[8:] if header else b"")
    refuses(full, ValueError, str(full / "model.safetensors"))


def test_missing_weights(full):
    (full / "model.safetensors").unlink()
    refuses(full, FileNotFoundError, "model.safetensors")


# --- absurd sizes: refused before anything is built --------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("hidden_size", 10**9), ("num_hidden_layers", 10**6), ("vocab_size", 10**12), ("intermediate_size", -1),
    ("num_attention_heads", 0), ("max_position_embeddings", 10**10), ("hidden_size", "32"), ("vocab_size", True),
])
def test_absurd_backbone_sizes(full, field, value):
    edit_json(full / "seqexit.json", **{f"backbone_config.{field}": value})
    message = refuses(full, ValueError, str(full / "seqexit.json"))
    assert f"backbone_config.{field}" in message


def test_sizes_within_limits_but_larger_than_the_weights(full):
    """Real-model sizes that the file does not back: refused from the header, no allocation."""
    edit_json(full / "seqexit.json", **{"backbone_config.hidden_size": 4096, "backbone_config.num_hidden_layers": 48,
                                         "backbone_config.intermediate_size": 16384})
    message = refuses(full, ValueError, str(full / "seqexit.json"))
    assert str(full / "model.safetensors") in message and "holds only" in message and "hidden_size 4096" in message


def test_absurd_label_list(full):
    edit_json(full / "seqexit.json", labels=[f"B-{i}" for i in range(200_000)])  # over the 100,000 limit
    message = refuses(full, ValueError, str(full / "seqexit.json"))
    assert "labels" in message


def test_more_labels_than_the_weights_hold(full):
    edit_json(full / "seqexit.json", labels=[f"B-{i}" for i in range(50_000)])
    refuses(full, ValueError, "labels")


@pytest.mark.parametrize(("field", "value"), [("labels", "O"), ("max_pieces", 10**12), ("casing", "yes"),
                                              ("backbone_config", [1]), ("surprise", 1), ("exit_dropout", 7)])
def test_bad_config_fields(full, field, value):
    edit_json(full / "seqexit.json", **{field: value})
    message = refuses(full, ValueError, str(full / "seqexit.json"))
    assert field in message


def test_unsupported_model_type(full):
    edit_json(full / "seqexit.json", **{"backbone_config.model_type": "gpt2"})
    refuses(full, ValueError, "model_type")


def test_limits_pass_real_bert_family_models():
    real = [
        dict(model_type="bert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             vocab_size=30522, max_position_embeddings=512, type_vocab_size=2),  # bert-large
        dict(model_type="xlm-roberta", hidden_size=4096, num_hidden_layers=48, num_attention_heads=32,
             intermediate_size=16384, vocab_size=250880, max_position_embeddings=514, type_vocab_size=1),  # XLM-R XXL
        dict(model_type="xlm-roberta", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, vocab_size=901629, max_position_embeddings=514, type_vocab_size=1),  # XLM-V
        dict(model_type="electra", embedding_size=128, hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
             intermediate_size=1024, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2),  # ELECTRA-small
        dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             vocab_size=30528, max_position_embeddings=8192, type_vocab_size=2),  # 8k-context BERT
    ]
    for config in real:
        assert check_backbone_config(config, "config.json") == config
    assert 10.5e9 < estimate_parameters(real[1]) < 11e9


# --- weights that do not match the config ------------------------------------------------------


def test_weights_of_another_shape(full):
    """A smaller feed-forward in the config than in the weights: fits in memory, but mismatches."""
    edit_json(full / "seqexit.json", **{"backbone_config.intermediate_size": 48})
    refuses(full, ValueError, str(full / "model.safetensors"))


def test_weights_missing_a_tensor(full):
    from safetensors.torch import load_file

    tensors = load_file(str(full / "model.safetensors"))
    tensors.pop(next(k for k in tensors if k.startswith("exits.")))
    save_file(tensors, str(full / "model.safetensors"))
    refuses(full, ValueError, str(full / "model.safetensors"))


def test_learned_exits_of_another_model(full):
    save_file({"nonsense": torch.zeros(3)}, str(full / "learned_exits.safetensors"))
    refuses(full, ValueError, str(full / "learned_exits.safetensors"))


def test_delta_of_another_shape(compact):
    from safetensors.torch import load_file

    tensors = load_file(str(compact / "delta.safetensors"))
    key = next(k for k in tensors if k.endswith(".full"))
    tensors[key] = torch.zeros(3, 3)
    save_file(tensors, str(compact / "delta.safetensors"))
    refuses(compact, ValueError, str(compact / "delta.safetensors"))


# --- the tokenizer -----------------------------------------------------------------------------


def test_tokenizer_larger_than_the_embeddings(full, tmp_path):
    bigger = tmp_path / "vocab.txt"
    bigger.write_text("\n".join(VOCAB + [f"extra{i}" for i in range(200)]) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (full / name).unlink(missing_ok=True)
    BertTokenizerFast(vocab=str(bigger), do_lower_case=True).save_pretrained(str(full))
    message = refuses(full, ValueError, str(full))
    assert "embedding matrix" in message and "model.safetensors" in message


def test_missing_tokenizer(full):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (full / name).unlink(missing_ok=True)
    refuses(full, FileNotFoundError, str(full))


def test_damaged_tokenizer(full):
    (full / "tokenizer.json").write_text('{"model": ')
    (full / "vocab.txt").unlink(missing_ok=True)
    refuses(full, ValueError, str(full))


# --- malformed JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seqexit.json", "temperatures.json", "training.json"])
@pytest.mark.parametrize("content", [b"{", b"\xff\xfe not utf-8", b"[" * 100_000])
def test_malformed_json(full, name, content):
    (full / name).write_bytes(content)
    refuses(full, ValueError, str(full / name))


def test_malformed_compact_record(compact):
    (compact / "compact.json").write_text("{")
    refuses(compact, ValueError, str(compact / "compact.json"))
    (compact / "compact.json").write_text('{"base": 3}')
    refuses(compact, ValueError, str(compact / "compact.json"))


def test_infinite_temperatures(full):
    (full / "temperatures.json").write_text('{"temperatures": [Infinity, 1.0]}')
    refuses(full, ValueError, str(full / "temperatures.json"))


# --- nothing from the folder is ever executed --------------------------------------------------


def test_a_pickled_model_is_never_unpickled(full, tmp_path):
    marker = tmp_path / "pwned"
    (full / "model.safetensors").unlink()
    write_evil_pickle(full / "pytorch_model.bin", marker)
    message = refuses(full, FileNotFoundError, "model.safetensors")
    assert "pytorch_model.bin is never read" in message
    assert not marker.exists()


def test_a_pickle_beside_safetensors_is_ignored(full, tmp_path):
    marker = tmp_path / "pwned"
    write_evil_pickle(full / "pytorch_model.bin", marker)
    load_model(full)
    assert not marker.exists()


def test_a_pickled_backbone_is_never_unpickled(backbone, tmp_path):
    marker = tmp_path / "pwned"
    folder = Path(shutil.copytree(backbone, tmp_path / "bert"))
    (folder / "model.safetensors").unlink()
    write_evil_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin is never read"):
        MultiExitTagger.from_backbone(folder, LABELS)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):  # nor as a compact folder's base
        save_model(MultiExitTagger.from_backbone(backbone, LABELS), tmp_path / "c", compact_against=str(folder))
    assert not marker.exists()


def test_remote_code_in_a_backbone_is_never_run(backbone, tmp_path):
    """auto_map in config.json and tokenizer_config.json names code in the folder: ignored."""
    marker = tmp_path / "pwned"
    folder = Path(shutil.copytree(backbone, tmp_path / "bert"))
    (folder / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
                                    "from transformers import BertModel as EvilModel, BertTokenizerFast as EvilTok\n")
    edit_json(folder / "config.json", auto_map={"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilModel"})
    edit_json(folder / "tokenizer_config.json", auto_map={"AutoTokenizer": [None, "evil.EvilTok"]})
    try:
        model = MultiExitTagger.from_backbone(folder, LABELS)
    except ValueError as err:  # refusing is fine too, as long as it names the folder
        assert str(folder) in str(err)
    else:
        assert "auto_map" not in model.config.backbone_config
        saved = save_model(model, tmp_path / "m")
        edit_json(saved / "seqexit.json", **{"backbone_config.auto_map": {"AutoModel": "evil.EvilModel"}})
        shutil.copy(folder / "evil.py", saved / "evil.py")
        load_model(saved)
    assert not marker.exists()


def test_a_backbone_with_absurd_sizes(backbone, tmp_path):
    folder = Path(shutil.copytree(backbone, tmp_path / "bert"))
    edit_json(folder / "config.json", num_hidden_layers=10**6)
    with pytest.raises(ValueError, match="num_hidden_layers") as caught:
        MultiExitTagger.from_backbone(folder, LABELS)
    assert str(folder / "config.json") in str(caught.value)


def test_a_backbone_with_malformed_config(backbone, tmp_path):
    folder = Path(shutil.copytree(backbone, tmp_path / "bert"))
    (folder / "config.json").write_text("{")
    with pytest.raises(ValueError, match="malformed") as caught:
        MultiExitTagger.from_backbone(folder, LABELS)
    assert str(folder / "config.json") in str(caught.value)


@pytest.mark.parametrize("damage", ["drop a layer", "drop a bias", "reshape a bias"])
def test_a_backbone_whose_weights_do_not_match(backbone, tmp_path, damage):
    """Not silently random-initialised, as transformers would: a ValueError naming the weights."""
    from safetensors.torch import load_file

    folder = Path(shutil.copytree(backbone, tmp_path / "bert"))
    tensors = load_file(str(folder / "model.safetensors"))
    if damage == "drop a layer":
        tensors = {k: v for k, v in tensors.items() if ".layer.1." not in k}
    elif damage == "drop a bias":
        tensors.pop(next(k for k in tensors if "layer.1.output.LayerNorm.bias" in k))
    else:
        key = next(k for k in tensors if "layer.1.intermediate.dense.bias" in k)
        tensors[key] = torch.zeros(tensors[key].shape[0] - 4)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ValueError) as caught:
        MultiExitTagger.from_backbone(folder, LABELS)
    assert str(folder / "model.safetensors") in str(caught.value)


# --- through the CLI: one line, exit 1 or 2 ----------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "sizes", "pickle"])
def test_cli_reports_one_line(full, tmp_path, damage):
    if damage == "truncate":
        truncate(full / "model.safetensors")
    elif damage == "sizes":
        edit_json(full / "seqexit.json", **{"backbone_config.hidden_size": 10**9})
    else:
        (full / "model.safetensors").unlink()
        write_evil_pickle(full / "pytorch_model.bin", tmp_path / "pwned")
    text = tmp_path / "in.txt"
    text.write_text("john smith was in berlin .\n")
    result = CliRunner().invoke(app, ["tag", str(text), "-m", str(full)])
    assert result.exit_code in (1, 2), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(full) in lines[0], result.output
    assert not (tmp_path / "pwned").exists()
