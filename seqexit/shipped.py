"""Models shipped with seqexit (the repository's `data/models/`, installed as the package
`seqexit_models`), found by name, so `--model en-ner` works offline from any directory."""

from __future__ import annotations

from pathlib import Path

from .model import CONFIG_FILE


def shipped_dir() -> Path | None:
    """The folder holding the shipped models in this installation (editable or not)."""
    try:
        import seqexit_models
    except ImportError:
        return None
    return Path(seqexit_models.__file__).resolve().parent


def shipped_models() -> list[str]:
    """Names of the shipped models present in this installation."""
    folder = shipped_dir()
    if folder is None:
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file())


def resolve_model(name_or_path: str | Path) -> Path:
    """A model folder from a path, or from a shipped model's name; a clear error otherwise."""
    path = Path(name_or_path)
    if path.exists():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a seqexit model folder (no {CONFIG_FILE})")
        return path
    folder = shipped_dir()
    if folder is not None and path.name == str(name_or_path) and (folder / path.name / CONFIG_FILE).is_file():
        return folder / path.name
    names = shipped_models()
    known = f"shipped models: {', '.join(names)}" if names else "no shipped models are installed"
    raise FileNotFoundError(f"no model folder or shipped model named {str(name_or_path)!r} ({known})")
