"""A fingerprint of what the shipped models say: for every model, engine (float, int8) and preset
(plus full depth), the SHA-256 of every label and exit layer on the test set, and the score.

Run it before and after a change that should not change any output, then compare:

    python benchmarks/label_snapshot.py --out before.json            # on the old checkout
    python benchmarks/label_snapshot.py --out after.json
    python benchmarks/label_snapshot.py --compare before.json after.json

`label_snapshot.json` beside this script is the fingerprint of the current models on this
project's machine (AMD EPYC, 2 cores; int8 digests depend on the CPU's kernels).

Only `Tagger.load(name, preset=..., quantize=...)`, `Tagger.tag` and `read_file` are used, so the
script runs unchanged on older checkouts (put the old tree first on PYTHONPATH). int8 runs use
the backend in SEQEXIT_INT8_BACKEND (default here: fbgemm), since a backend picked by timing
may differ between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TEST_SETS = {
    "en-ner": SHARED / "conll2003" / "eng.testb",
    "en-pos": SHARED / "ud_en_ewt" / "en_ewt-ud-test.conllu",
}


def snapshot(models: list[str], batch_size: int) -> dict:
    from seqexit import Tagger
    from seqexit.data.formats import read_file
    from seqexit.evaluation.metrics import accuracy, span_scores

    rows = {}
    for name in models:
        base = Tagger.load(name)
        span = base.model.config.scheme is not None
        sentences = read_file(TEST_SETS[name], "auto", span_tags=span)
        gold = [s.tags for s in sentences]
        presets = json.loads((_folder(name) / "presets.json").read_text())
        for quantize, section in ((None, "presets"), ("int8", "int8")):
            for preset in [None, *presets.get(section, {})]:
                start = time.perf_counter()
                tagger = Tagger.load(name, preset=preset, quantize=quantize, batch_size=batch_size)
                tagged = tagger.tag(sentences)
                digest = hashlib.sha256()
                for t in tagged:
                    digest.update(json.dumps([t.labels, t.exit_layers]).encode())
                key = f"{name} {quantize or 'float'} {preset or 'full depth'}"
                rows[key] = {"sha256": digest.hexdigest(),
                             "score": round(span_scores(gold, [t.labels for t in tagged]).f1 if span
                                            else accuracy(gold, [t.labels for t in tagged]), 2),
                             "seconds": round(time.perf_counter() - start, 1)}
                print(key, rows[key], file=sys.stderr, flush=True)
                del tagger
    return rows


def _folder(name: str) -> Path:
    import seqexit_models

    return Path(seqexit_models.__file__).resolve().parent / name


def compare(before: dict, after: dict) -> int:
    differ = [key for key in before if key in after and before[key]["sha256"] != after[key]["sha256"]]
    missing = sorted(set(before) ^ set(after))
    same = sum(1 for key in before if key in after and key not in differ)
    for key in differ:
        print(f"DIFFERENT {key}: score {before[key]['score']} -> {after[key]['score']}")
    for key in missing:
        print(f"ONLY IN ONE {key}")
    print(f"{same} identical, {len(differ)} different, {len(missing)} in one snapshot only")
    return 1 if differ or missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the snapshot here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--models", nargs="+", default=list(TEST_SETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.compare:
        return compare(*(json.loads(p.read_text()) for p in args.compare))
    if args.out is None:
        parser.error("give --out FILE or --compare BEFORE AFTER")
    os.environ.setdefault("SEQEXIT_INT8_BACKEND", "fbgemm")
    import torch

    torch.set_num_threads(args.threads)
    rows = snapshot(args.models, args.batch_size)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
