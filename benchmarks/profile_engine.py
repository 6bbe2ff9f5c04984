"""Where the engine's time goes, per exit policy: why wall-clock saves less than FLOPs.

Times every stage of `run_policy` on a test set (CPU; timers around the library's own
functions, which run synchronously there): word pieces (tokenizing and chunking), collating
batches, embeddings, encoder layers, exit classifiers, the halting bookkeeping between them
(entropy, window, masks, regrouping), and turning results into per-sentence rows. Encoder
layers are the only part whose cost falls with the FLOPs; the rest bounds the wall-clock
speed-up (Amdahl). Writes benchmarks/profile_engine.{json,md} and rebuilds RESULTS.md with it.

Usage: python benchmarks/profile_engine.py [--model en-ner] [--policy full --policy preset:balanced --policy tokee:0.1:0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

import seqexit.exits.engine as engine
from seqexit.bundle import find_model, load_model, resolve_preset
from seqexit.data.formats import read_file
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import MultiExitTagger
from seqexit.quantize import quantize_model

from run_all import write_section  # benchmarks/ is the script's folder, first on sys.path
from seqexit.runtime.select import cpu_name
from timing import paired_speedup

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
TESTS = {"ner": DATA / "conll2003" / "eng.testb", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-test.conllu"}
STAGES = ("word pieces", "collate", "embeddings", "encoder layers", "exit classifiers", "halting bookkeeping",
          "results")


def parse_policy(spec: str, folder: Path, quantize: str | None = None) -> ExitPolicy:
    """full | static:K | preset:NAME | tokee:THRESHOLD:WINDOW | sentee:THRESHOLD"""
    kind, *rest = spec.split(":")
    if kind == "full":
        return ExitPolicy()
    if kind == "static":
        return ExitPolicy.static(int(rest[0]))
    if kind == "preset":
        return resolve_preset(folder, rest[0], quantize=quantize)
    if kind == "tokee":
        return ExitPolicy.tokee(float(rest[0]), window=int(rest[1]) if len(rest) > 1 else 0)
    if kind == "sentee":
        return ExitPolicy.sentee(float(rest[0]))
    raise SystemExit(f"unknown policy {spec!r}: full, static:K, preset:NAME, tokee:T:W or sentee:T")


class StageClock:
    """Wraps the engine's stages with timers; `seconds` holds the time of one run per stage."""

    def __init__(self, model: MultiExitTagger) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.model = model
        adapter, pieces = model.adapter, model.pieces
        self._wrap(pieces, "encode", "word pieces")
        self._wrap(pieces, "collate", "collate")
        self._wrap(adapter, "embed", "embeddings")
        self._wrap(adapter, "run_layer", "encoder layers")
        self._wrap(adapter, "run_layer_active", "encoder layers")
        for exit_head in model.exits:
            self._wrap(exit_head, "forward", "exit classifiers")
        inner = engine.exit_batch

        def exit_batch(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds["exit_batch"] += time.perf_counter() - start

        engine.exit_batch = exit_batch

    def _wrap(self, owner, name: str, stage: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        setattr(owner, name, timed)

    def run(self, words, policy: ExitPolicy, batch_size: int) -> dict[str, float]:
        self.seconds.clear()
        start = time.perf_counter()
        run_policy(self.model, words, policy, batch_size=batch_size)
        total = time.perf_counter() - start
        s = dict(self.seconds)
        inside = s.get("embeddings", 0) + s.get("encoder layers", 0) + s.get("exit classifiers", 0)
        s["halting bookkeeping"] = s.pop("exit_batch", 0) - inside
        s["results"] = total - sum(s.get(k, 0) for k in STAGES if k != "results")
        s["total"] = total
        return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ner", choices=list(TESTS))
    parser.add_argument("--model", default=None, help="default: en-ner / en-pos")
    parser.add_argument("--policy", action="append", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quantize", default=None, choices=["int8"], help="profile the int8 engine (and its presets)")
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = find_model(args.model or f"en-{args.task}")
    model = quantize_model(load_model(folder), args.quantize)
    words = [s.words for s in read_file(TESTS[args.task], span_tags=args.task == "ner")]
    specs = args.policy or ["full", "preset:accurate", "preset:balanced", "preset:fast"]
    policies = {spec: parse_policy(spec, folder, args.quantize) for spec in specs}
    clock = StageClock(model)
    clock.run(words[:64], ExitPolicy(), args.batch_size)  # warm-up
    runs: dict[str, list[dict[str, float]]] = {spec: [] for spec in specs}
    for _ in range(args.rounds):  # interleaved: every policy once per round
        for spec, policy in policies.items():
            runs[spec].append(clock.run(words, policy, args.batch_size))
    median = {spec: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for spec, rs in runs.items()}
    first = [r["total"] for r in runs[specs[0]]]
    paired = {spec: paired_speedup(first, [r["total"] for r in rs]) for spec, rs in runs.items()}
    result = {"command": "python " + " ".join(sys.argv), "task": args.task, "model": str(folder.name), "quantize": args.quantize,
              "cpu": cpu_name(), "rounds": args.rounds, "paired_speedup": paired,
              "batch_size": args.batch_size, "threads": args.threads, "sentences": len(words),
              "words": sum(map(len, words)), "torch": torch.__version__, "machine": f"{platform.machine()} CPU",
              "seconds": median}
    write_section(args.output, "profile_engine", result, report(result))


def report(r: dict) -> str:
    specs = list(r["seconds"])
    full = r["seconds"][specs[0]]
    lines = ["## Where the time goes", "",
             f"`{r['command']}`: {r.get('cpu') or r['machine']}, {r['threads']} threads, torch {r['torch']}, batch {r['batch_size']}, "
             f"{r['sentences']} sentences; median seconds of {r.get('rounds', 'the')} interleaved rounds per stage.", "",
             "| stage | " + " | ".join(specs) + " |", "|---|" + "---|" * len(specs)]
    for stage in (*STAGES, "total"):
        cells = []
        for spec in specs:
            seconds = r["seconds"][spec].get(stage, 0.0)
            cells.append(f"{seconds:.2f} s ({seconds / r['seconds'][spec]['total']:.0%})")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| speed-up of the encoder layers alone | " + " | ".join(
        f"{full['encoder layers'] / r['seconds'][s]['encoder layers']:.2f}x" for s in specs) + " |")
    lines.append("| speed-up, whole run | " + " | ".join(
        f"{full['total'] / r['seconds'][s]['total']:.2f}x" for s in specs) + " |")
    if "paired_speedup" in r:
        lines.append("| speed-up, whole run, median of the rounds' own ratios | " + " | ".join(
            f"{r['paired_speedup'][s]:.2f}x" for s in specs) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
