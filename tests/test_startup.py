"""`import seqexit` and the CLI's import stay light: the scoring, training, spaCy, Ray and ONNX
stacks load only in the commands that use them (benchmarks/startup.py times the start-up)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("seqeval", "sklearn", "spacy", "ray", "onnxruntime", "seqexit.training")


def loaded_after(statement: str) -> list[str]:
    """The HEAVY modules in sys.modules after `statement`, in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import seqexit", "import cli.main"])
def test_import_loads_no_heavy_stack(statement):
    assert loaded_after(statement) == []


def test_lazy_names_still_import():
    assert loaded_after("from seqexit import Tagger, ExitPolicy, open_tagger, load_model, Sentence") == []
    assert "seqexit.training" in loaded_after("from seqexit import train, TrainConfig, train_joint")
