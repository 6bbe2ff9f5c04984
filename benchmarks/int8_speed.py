"""Early exit on int8 against ONNX Runtime, side by side in one run (CPU).

For CoNLL-2003 test (en-ner) and UD EWT test (en-pos), at batch 32 and batch 1, with timings
interleaved round by round: seqexit's torch fp32 full depth (the reference), ONNX Runtime fp32,
ONNX Runtime int8 (its dynamic quantisation, per-tensor as documented and per-channel), seqexit's
int8 full depth, and every seqexit preset in fp32 and int8: score, words/s and the ratio to torch
fp32. ONNX Runtime runs the same model's full-depth graph over seqexit's own word pieces and
batches (benchmarks/onnx_runtime.py), so only the encoder's execution differs.

Also the int8 cost per exit (fp32 against int8, every exit, dev and test) and what each step of
the int8 recipe bought. Writes benchmarks/int8_speed.{json,md}, int8_{ner,pos}.png and rebuilds
RESULTS.md with the section. Needs the benchmark extra: pip install -e ".[onnx]".

Usage: python benchmarks/int8_speed.py [--tasks ner pos] [--rounds 3] [--batch-sizes 32 1]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

from onnx_runtime import OnnxTagger, export_onnx, quantize_onnx  # benchmarks/ is first on sys.path
from run_all import (DATA, TASKS, System, add_run_arguments, report_header, score_of, seqexit_system, system_row,
                     system_table, task_model_and_test, time_systems, timing_words, write_section)
from seqexit.bundle import load_presets
from seqexit.data.formats import read_file
from seqexit.evaluation import evaluate_exits
from seqexit.exits import ExitPolicy
from seqexit.model import MultiExitTagger
from seqexit.quantize import int8_backend, quantize_model


DEV = {"ner": DATA / "conll2003" / "eng.testa", "pos": DATA / "ud_en_ewt" / "en_ewt-ud-dev.conllu"}
PRESETS = ("accurate", "balanced", "fast")


def onnx_system(name: str, kind: str, path: Path, model: MultiExitTagger, threads: int) -> System:
    tagger = OnnxTagger(path, model, threads)
    return System(name, kind, lambda words, batch_size: tagger(words, batch_size), flops_speedup=1.0)


def recipe_steps(model: MultiExitTagger, data: dict[str, list]) -> list[dict]:
    """Full-depth and per-exit scores of the int8 recipe's steps on dev and test: torch's
    default dynamic int8 (7-bit activations), then 8-bit activations (what seqexit ships), then
    variants that keep one projection type in float."""
    import seqexit.quantize as quantize

    steps = [("fp32", None, {}), ("int8, 7-bit activations (torch's default)", False, {}),
             ("int8, 8-bit activations (seqexit)", True, {}),
             ("int8, 8-bit, feed-forward output in fp32", True, {"keep_float": {"ffn_out"}}),
             ("int8, 8-bit, attention output in fp32", True, {"keep_float": {"attn_out"}})]
    rows = []
    original = quantize.full_range_activations
    try:
        for name, full_range, options in steps:
            if full_range is None:
                runner = model
            else:
                quantize.full_range_activations = lambda value=full_range: value
                runner = quantize_model(model, **options)
            row = {"step": name}
            for split, sentences in data.items():
                row[split] = [e.score for e in evaluate_exits(runner, sentences, batch_size=32)]
            rows.append(row)
            print(f"  {name}: " + "  ".join(f"{s} {row[s][-1]:.2f}" for s in data), flush=True)
    finally:
        quantize.full_range_activations = original
    return rows


def benchmark_task(task: str, args, scratch: Path) -> dict:
    data_name, metric = TASKS[task][2:]
    folder, model, spans, test = task_model_and_test(task, args)
    dev = read_file(DEV[task], span_tags=spans)[: args.limit or None]
    words, gold = [s.words for s in test], [s.tags for s in test]
    print(f"{task}: {len(words)} test sentences, {sum(map(len, words))} words", flush=True)
    int8 = quantize_model(model)
    graph = export_onnx(model, scratch / f"{task}.onnx")
    systems = [
        seqexit_system("torch fp32 full depth (seqexit)", "torch-fp32", model, ExitPolicy(), words),
        onnx_system("ONNX Runtime fp32 full depth", "ort-fp32", graph, model, args.threads),
        onnx_system("ONNX Runtime int8 full depth", "ort-int8", quantize_onnx(graph, scratch / f"{task}.int8.onnx"),
                    model, args.threads),
        onnx_system("ONNX Runtime int8 per-channel full depth", "ort-int8",
                    quantize_onnx(graph, scratch / f"{task}.int8pc.onnx", per_channel=True), model, args.threads),
        seqexit_system("torch int8 full depth (seqexit)", "torch-int8", int8, ExitPolicy(), words),
    ]
    float_presets, int8_presets = load_presets(folder), load_presets(folder, quantize="int8")
    for preset in PRESETS:
        if preset in float_presets:
            systems.append(seqexit_system(f"seqexit {preset} fp32", "preset-fp32", model, float_presets[preset].policy, words))
        if preset in int8_presets:
            systems.append(seqexit_system(f"seqexit {preset} int8", "preset-int8", int8, int8_presets[preset].policy, words))
    for system in systems:
        system.score = score_of(gold, system.run(words, 32), spans)
        print(f"  {system.name}: {system.score:.2f}", flush=True)
    time_systems(systems, words, args.batch_sizes, args.rounds, args.small_batch_sentences)
    rows = [system_row(system, systems[0], words, args) for system in systems]
    steps = recipe_steps(model, {"dev": dev, "test": test}) if args.recipe else []
    return {"task": task, "data": data_name, "metric": metric, "sentences": len(words), "words": sum(map(len, words)),
            "timed_sentences": {str(b): len(timing_words(words, b, args.small_batch_sentences)) for b in args.batch_sizes},
            "rows": rows, "recipe": steps, "targets": targets(rows, args.batch_sizes)}


def targets(rows: list[dict], batch_sizes: list[int]) -> dict:
    """The issue's two targets per batch size: an int8 preset at >= 1.5x ONNX Runtime int8's
    words/s with a score no lower (against each ORT int8 variant), and `balanced` fp32 faster
    than ONNX Runtime fp32 within 0.3 points of fp32 full depth."""
    full = next(r for r in rows if r["kind"] == "torch-fp32")["score"]
    ort_fp32 = next(r for r in rows if r["kind"] == "ort-fp32")
    balanced = next((r for r in rows if r["system"] == "seqexit balanced fp32"), None)
    out = {}
    for b in map(str, batch_sizes):
        key = f"words_per_second_bs{b}"
        int8_checks = []
        for ort in (r for r in rows if r["kind"] == "ort-int8"):
            eligible = [r for r in rows if r["kind"] in ("preset-int8", "torch-int8") and r["score"] >= ort["score"] - 1e-9]
            best = max(eligible, key=lambda r: r[key], default=None)
            int8_checks.append({"against": ort["system"], "ort_score": ort["score"], "best": best and best["system"],
                                "ratio": best[key] / ort[key] if best else None,
                                "met": bool(best and best[key] >= 1.5 * ort[key])})
        out[b] = {"int8_presets_vs_ort_int8": int8_checks,
                  "balanced_vs_ort_fp32": balanced and {
                      "ratio": balanced[key] / ort_fp32[key], "drop": full - balanced["score"],
                      "met": bool(balanced[key] > ort_fp32[key] and full - balanced["score"] <= 0.3 + 1e-9)}}
    return out


def report(results: dict) -> str:
    lines = report_header("Early exit on int8 against ONNX Runtime", results, results["environment"]["machine"])
    for task, result in results["tasks"].items():
        lines += system_table(result)
        for b, check in result["targets"].items():
            for c in check["int8_presets_vs_ort_int8"]:
                verdict = "met" if c["met"] else "not met"
                ratio = f"{c['ratio']:.2f}x" if c["ratio"] is not None else "no int8 setting scores as high"
                lines.append(f"- bs{b}: best seqexit int8 setting scoring >= {c['against']} ({c['ort_score']:.2f}): "
                             f"{c['best'] or '-'}, {ratio} its words/s (target 1.5x: {verdict}).")
            if check["balanced_vs_ort_fp32"]:
                c = check["balanced_vs_ort_fp32"]
                lines.append(f"- bs{b}: `balanced` fp32 against ONNX Runtime fp32: {c['ratio']:.2f}x words/s at a drop of "
                             f"{c['drop']:.2f} (target: faster at <= 0.3: {'met' if c['met'] else 'not met'}).")
        lines.append("")
        if result["recipe"]:
            lines += ["int8 cost per exit and what each recipe step bought (full depth last):", "",
                      "| step | dev, exits 1..L | test, exits 1..L |", "|---|---|---|"]
            for step in result["recipe"]:
                lines.append(f"| {step['step']} | " + " / ".join(f"{s:.2f}" for s in step["dev"]) + " | "
                             + " / ".join(f"{s:.2f}" for s in step["test"]) + " |")
            lines.append("")
        lines += [f"![{task}](int8_{task}.png)", ""]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"torch-fp32": ("k", "*"), "ort-fp32": ("tab:green", "^"), "ort-int8": ("tab:olive", "v"),
              "torch-int8": ("tab:gray", "*"), "preset-fp32": ("tab:blue", "o"), "preset-int8": ("tab:red", "o")}
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for kind, (color, marker) in styles.items():
        points = sorted((r["wall_speedup_bs32"], r["score"]) for r in result["rows"] if r["kind"] == kind)
        if points:
            axis.plot(*zip(*points), marker=marker, color=color, label=kind,
                      linestyle="-" if kind.startswith("preset") else "none")
    axis.set_xlabel("words/s relative to torch fp32 full depth, batch 32")
    axis.set_ylabel(result["metric"])
    axis.set_title(result["data"])
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for task in TASKS:
        parser.add_argument(f"--{task}-model", default=None, help=f"default: the shipped {TASKS[task][0]}")
    add_run_arguments(parser, small_batch_sentences=500)
    parser.add_argument("--no-recipe", dest="recipe", action="store_false", help="skip the recipe-steps table")
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    results = {"command": "python " + " ".join(sys.argv), "environment": {
        "machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "int8_backend": int8_backend(), "python": platform.python_version()},
        "tasks": {}}
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seqexit-onnx-") as scratch:
        for task in args.tasks:
            results["tasks"][task] = benchmark_task(task, args, Path(scratch))
    for task, result in results["tasks"].items():
        plot(result, args.output / f"int8_{task}.png")
    write_section(args.output, "int8_speed", results, report(results))


if __name__ == "__main__":
    main()
