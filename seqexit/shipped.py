"""Models shipped with seqexit (under `data/models/`), found by name, so `--model NAME` works
offline without knowing where the package lives."""

from __future__ import annotations

from pathlib import Path

from .model import CONFIG_FILE

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "models"


def shipped_models() -> list[str]:
    """Names of the shipped models present in this installation."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def resolve_model(name_or_path: str | Path) -> Path:
    """A model folder from a path, or from a shipped model's name; a clear error otherwise."""
    path = Path(name_or_path)
    if path.exists():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a seqexit model folder (no {CONFIG_FILE})")
        return path
    if path.name == str(name_or_path) and (SHIPPED_DIR / path.name / CONFIG_FILE).is_file():
        return SHIPPED_DIR / path.name
    names = shipped_models()
    known = f"shipped models: {', '.join(names)}" if names else "no shipped models are installed"
    raise FileNotFoundError(f"no model folder or shipped model named {str(name_or_path)!r} ({known})")
