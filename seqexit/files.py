"""File modes: what seqexit writes is readable as any new file would be (the user's umask).

`tempfile.mkstemp` (our atomic writes) and safetensors create files with mode 0600, so a model,
presets or tagged output written by one user would be unreadable to others sharing it."""

from __future__ import annotations

import os
from pathlib import Path


def umask_mode(path: str | Path) -> None:
    """Give `path` the mode a plain `open(path, "w")` would have: 0666 minus the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
