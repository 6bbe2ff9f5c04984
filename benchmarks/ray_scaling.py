"""The Ray engine against the local engine: throughput, start-up cost and scaling (issue 9).

CoNLL-2003 test repeated to at least 30,000 sentences, tagged with a shipped model and preset:
- the local engine (`Tagger.tag_stream`, what `seqexit tag` runs) at 2 threads and at 1 thread;
- Ray Data (`seqexit.distributed.tag_on_ray`, what `seqexit tag --engine ray` runs) with 1 worker
  and with 2 workers of 1 CPU each, on a local Ray started with this machine's cores.
Ray's fixed start-up cost is measured apart: `ray.init`, then a 32-sentence job (actor start and
model load dominate it). Scaling efficiency = words/s with 2 workers / (2 x words/s with 1).
Every configuration's labels and exit layers are checked against the local engine's.

Writes benchmarks/ray_scaling.{json,md} and rebuilds RESULTS.md (run_all.write_report) to include it.
Usage: python benchmarks/ray_scaling.py [--model en-ner] [--preset balanced] [--min-sentences 30000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from seqexit.bundle import find_model, resolve_preset
from seqexit import Tagger
from seqexit.data.formats import read_file
from seqexit.distributed import start_ray, tag_on_ray


from run_all import write_section  # benchmarks/ is the script's folder, first on sys.path

HERE = Path(__file__).resolve().parent
TEST = HERE.parent.parent / "shared" / "data" / "conll2003" / "eng.testb"


def corpus(min_sentences: int):
    """CoNLL-2003 test, repeated whole until it holds at least `min_sentences` sentences."""
    test = read_file(TEST, span_tags=True)
    copies = -(-min_sentences // len(test))
    return test * copies, copies


def timed(run) -> tuple[float, list]:
    start = time.perf_counter()
    out = list(run())
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="en-ner")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--min-sentences", type=int, default=30000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    folder = find_model(args.model)
    policy = resolve_preset(folder, args.preset)
    sentences, copies = corpus(args.min_sentences)
    words = sum(len(s.words) for s in sentences)
    print(f"{len(sentences)} sentences ({copies} copies of CoNLL-2003 test), {words} words", flush=True)
    rows, reference = [], None

    def record(name: str, seconds: float, tagged: list, startup: float | None = None) -> None:
        nonlocal reference
        got = [(t.labels, t.exit_layers) for t in tagged]
        reference = reference or got
        rows.append({"configuration": name, "seconds": seconds, "words_per_second": words / seconds,
                     "sentences": len(tagged), "identical_to_local": got == reference, "startup_seconds": startup})
        print(f"  {name}: {seconds:.1f} s, {words / seconds:,.0f} words/s, identical: {got == reference}", flush=True)

    for threads in (2, 1):
        torch.set_num_threads(threads)
        tagger = Tagger.load(folder, policy=policy, batch_size=args.batch_size)
        tagger.tag(sentences[:64])  # warm-up
        record(f"local engine, {threads} thread{'s' if threads > 1 else ''}", *timed(lambda: tagger.tag_stream(sentences)))
    torch.set_num_threads(2)

    init_start = time.perf_counter()
    start_ray(num_cpus=os.cpu_count())
    init_seconds = time.perf_counter() - init_start
    print(f"  ray.init: {init_seconds:.1f} s", flush=True)
    for workers in (1, 2):
        job = lambda part: tag_on_ray(part, str(folder), policy=policy, workers=workers, cpus_per_worker=1,  # noqa: E731
                                      batch_size=args.batch_size)
        startup, _ = timed(lambda: job(sentences[:32]))
        record(f"Ray Data, {workers} worker{'s' if workers > 1 else ''} x 1 CPU", *timed(lambda: job(sentences)), startup=startup)

    by_name = {r["configuration"]: r for r in rows}
    one, two = by_name["Ray Data, 1 worker x 1 CPU"], by_name["Ray Data, 2 workers x 1 CPU"]
    local1, local2 = by_name["local engine, 1 thread"], by_name["local engine, 2 threads"]
    result = {
        "command": "python " + " ".join(sys.argv), "model": args.model, "preset": args.preset,
        "sentences": len(sentences), "words": words, "copies_of_test": copies,
        "environment": {"machine": f"{platform.machine()} CPU", "cpus": os.cpu_count(), "torch": torch.__version__,
                        "ray": __import__("ray").__version__, "python": platform.python_version()},
        "ray_init_seconds": init_seconds, "rows": rows,
        "scaling_efficiency": two["words_per_second"] / (2 * one["words_per_second"]),
        "ray_1_worker_vs_local_1_thread": one["words_per_second"] / local1["words_per_second"],
        "ray_2_workers_vs_local_2_threads": two["words_per_second"] / local2["words_per_second"],
    }
    write_section(args.output, "ray_scaling", result, report(result))


def report(r: dict) -> str:
    env = r["environment"]
    lines = ["## Ray Data engine: throughput and scaling", "",
             f"`{r['command']}`: {env['machine']}, {env['cpus']} cores, torch {env['torch']}, Ray {env['ray']}. "
             f"{r['sentences']:,} sentences ({r['copies_of_test']} copies of CoNLL-2003 test, {r['words']:,} words), "
             f"`{r['model']}`, preset `{r['preset']}`, batch 32; one run, configurations one after another. "
             "Times are end to end (Ray's include sending the sentences and collecting the rows in order).", "",
             "| configuration | seconds | words/s | job start-up (32 sentences) | labels and exit layers = local |",
             "|---|---|---|---|---|"]
    for row in r["rows"]:
        startup = f"{row['startup_seconds']:.1f} s" if row["startup_seconds"] is not None else "-"
        lines.append(f"| {row['configuration']} | {row['seconds']:.1f} | {row['words_per_second']:,.0f} | {startup} | "
                     f"{'yes' if row['identical_to_local'] else 'NO'} ({row['sentences']:,} sentences) |")
    lines += ["", f"- Ray's fixed start-up: `ray.init` {r['ray_init_seconds']:.1f} s once per process, then each job "
              "pays its actors' start and model load (the 32-sentence job's time above).",
              f"- Scaling efficiency from 1 to 2 workers: {r['scaling_efficiency']:.0%}. "
              f"Ray with 1 worker runs at {r['ray_1_worker_vs_local_1_thread']:.2f}x the local engine on 1 thread; "
              f"with 2 workers at {r['ray_2_workers_vs_local_2_threads']:.2f}x the local engine on 2 threads.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
