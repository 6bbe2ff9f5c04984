"""A BERT WordPiece tokenizer read straight from its files with the `tokenizers` library.

What `seqexit.pieces.WordPieceEncoder` reads from a Hugging Face fast tokenizer is its Rust
tokenizer and a few ids; importing transformers to wrap them costs about a second of every
`seqexit tag`. For the folders where transformers would build exactly this tokenizer (a BERT
tokenizer.json whose normalizer already says what tokenizer_config.json asks for: lowercasing,
accents, Chinese characters), `load` returns the light one; for every other folder, None, and
the caller uses transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

BERT_CLASSES = ("BertTokenizer", "BertTokenizerFast")
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
VERY_LARGE = int(1e30)  # transformers' model_max_length when the config names none


class LightTokenizer:
    """The Rust tokenizer of a BERT folder with its special-token ids and length limit."""

    is_fast = True
    bos_token_id = eos_token_id = None

    def __init__(self, folder: Path, backend, config: dict[str, Any], ids: dict[str, int]) -> None:
        self.folder, self.backend_tokenizer, self.init_kwargs = folder, backend, config
        self.cls_token_id, self.sep_token_id = ids["cls_token"], ids["sep_token"]
        self.pad_token_id, self.unk_token_id = ids["pad_token"], ids["unk_token"]
        self.model_max_length = int(config.get("model_max_length") or VERY_LARGE)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def save_pretrained(self, folder: str | Path) -> None:
        """Copy the tokenizer files it was read from (transformers loads them as before)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)


def load(folder: str | Path) -> LightTokenizer | None:
    """The folder's tokenizer without transformers, or None where transformers would build
    something else (another family, a normalizer the config overrides, a missing special token)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        specials = json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8")) \
            if (folder / "special_tokens_map.json").is_file() else {}
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("tokenizer_class") not in BERT_CLASSES or not isinstance(spec, dict):
        return None
    normalizer = spec.get("normalizer") or {}
    wanted = {"type": "BertNormalizer", "lowercase": config.get("do_lower_case", True),
              "strip_accents": config.get("strip_accents"), "handle_chinese_chars": config.get("tokenize_chinese_chars", True)}
    if any(normalizer.get(key) != value for key, value in wanted.items()):
        return None  # transformers would rebuild the normalizer from the config
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - whatever the Rust side raises, transformers reports it better
        return None
    ids = {}
    for name, default in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("unk_token", "[UNK]")):
        token = config.get(name, specials.get(name, default))
        token = token.get("content") if isinstance(token, dict) else token
        ids[name] = backend.token_to_id(token) if isinstance(token, str) else None
        if ids[name] is None:
            return None
    return LightTokenizer(folder, backend, config, ids)
