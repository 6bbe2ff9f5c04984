"""Wall-clock and FLOPs speed-up of SENTEE and TOKEE over full depth, with F1, on the CPU.

One process, modes interleaved round by round, batch 32 and batch 1, CoNLL-2003 test by default.
A policy's wall-clock speed-up is the median over rounds of (full depth's time / its time) in the
same round, so that drift in a shared machine's speed cancels out. Writes benchmarks/early_exit_speed.json and .md.
Usage: python benchmarks/early_exit_speed.py --model runs/ner-ssft/model [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from seqexit.bundle import load_model
from seqexit.data import read_conll
from seqexit.evaluation import span_scores
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import MultiExitTagger

HERE = Path(__file__).resolve().parent
POLICIES = [  # settings spread along the dev-set frontier (benchmarks/ssft_curve.md)
    ExitPolicy(),
    ExitPolicy.static(3),
    ExitPolicy.sentee(0.2),
    ExitPolicy.sentee(0.4),
    ExitPolicy.tokee(0.05, window=2),
    ExitPolicy.tokee(0.1, window=2),
    ExitPolicy.tokee(0.2, window=2),
    ExitPolicy.tokee(0.3, window=2),
    ExitPolicy.tokee(0.3, window=1),
    ExitPolicy.tokee(0.4, window=2),
]


def measure(model, sentences, gold, policy: ExitPolicy, batch_size: int) -> dict:
    started = time.perf_counter()
    run = run_policy(model, sentences, policy, batch_size=batch_size)
    seconds = time.perf_counter() - started
    f1 = span_scores(gold, [r.labels(model) for r in run.sentences]).f1
    return {"seconds": seconds, "f1": f1, "flops_speedup": run.flops.speedup, "words_per_layer": run.words_per_layer}


def report(results: dict) -> str:
    lines = ["# Early exit on the CPU: wall-clock against FLOPs", "",
             f"Model `{results['model']}`, {results['data']} ({results['sentences']} sentences, {results['words']} words), "
             f"{results['environment']['threads']} threads, torch {results['environment']['torch']}, "
             f"{results['rounds']} interleaved rounds; wall-clock speed-up = median over rounds of full depth's time / the policy's, "
             "words/s from the median time.", "", f"Command: `{results['command']}`", "",
             *[f"{note}\n" for note in results.get("notes", [])]]
    for batch_size, rows in results["batches"].items():
        lines += [f"## batch {batch_size}", "",
                  "| policy | F1 | FLOPs speed-up | wall-clock speed-up | wall / FLOPs | words/s |", "|---|---|---|---|---|---|"]
        for row in rows:
            wall = row["wall_speedup"]
            lines.append(f"| {row['policy']} | {row['f1']:.2f} | {row['flops_speedup']:.2f}x | {wall:.2f}x | "
                         f"{wall / row['flops_speedup']:.0%} | {results['words'] / row['seconds']:,.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/conll2003/eng.testb"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--output", type=Path, default=HERE / "early_exit_speed")
    parser.add_argument("--note", action="append", default=[], help="a line for the report (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gold_sentences = read_conll(args.data)
    sentences, gold = [s.words for s in gold_sentences], [s.tags for s in gold_sentences]
    model = load_model(args.model)
    for policy in POLICIES:  # warm-up: allocator, kernels and caches for every code path
        run_policy(model, sentences[:256], policy, batch_size=32)
    results = {"model": str(args.model), "data": str(args.data), "sentences": len(sentences),
               "words": sum(map(len, sentences)), "rounds": args.rounds, "command": "python " + shlex.join(sys.argv), "notes": args.note,
               "environment": {"machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__},
               "batches": {}}
    for batch_size in args.batch_sizes:
        timings: dict[int, list[dict]] = {i: [] for i in range(len(POLICIES))}
        for round_ in range(args.rounds):
            for i, policy in enumerate(POLICIES):
                timings[i].append(measure(model, sentences, gold, policy, batch_size))
                print(f"batch {batch_size} round {round_ + 1} {policy}: {timings[i][-1]['seconds']:.2f} s", flush=True)
        full = [t["seconds"] for t in timings[0]]
        results["batches"][str(batch_size)] = [
            {"policy": str(policy), **timings[i][0], "seconds": statistics.median(t["seconds"] for t in timings[i]),
             "all_seconds": [t["seconds"] for t in timings[i]],
             "wall_speedup": statistics.median(f / t["seconds"] for f, t in zip(full, timings[i]))}
            for i, policy in enumerate(POLICIES)
        ]
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
