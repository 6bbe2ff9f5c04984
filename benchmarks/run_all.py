"""The benchmark report: seqexit against its peers, side by side, in one run (CPU).

For each task (CoNLL-2003 test NER with en-ner, UD EWT test UPOS with en-pos) it measures, in one
process and with timings interleaved round by round:
- seqexit: full depth, a static exit at every layer, SENTEE and TOKEE over a threshold/window
  grid and the calibrated presets: score, FLOPs speed-up, mean exit layer, wall-clock speed-up
  over seqexit's own full depth at batch 32 and batch 1;
- the oracle bound (every word exits where its label settles) and how much of it TOKEE reaches
  at <= 0.1 and <= 0.3 points of score;
- peers: the same backbone fine-tuned the ordinary way, exported as a Hugging Face token
  classifier and served by `pipeline("token-classification")`, and its raw batched forward;
  smaller static models (the backbone's first k layers, fine-tuned as ordinary taggers);
and writes benchmarks/RESULTS.md, benchmarks/results.json and PNG plots.

Usage (the models of the peers are made with seqexit train; see RESULTS.md for the commands):
  python benchmarks/run_all.py --ner-hf runs/issue7/hf-ner --ner-small 3=runs/issue7/small-3/model ... \
      --pos-hf runs/issue7/hf-pos --pos-small 3=runs/issue7/pos-small-3/model ...
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqexit.bundle import find_model, load_model, load_presets
from seqexit.data import Sentence
from seqexit.data.formats import read_file
from seqexit.evaluation import accuracy, oracle_bound, span_scores
from seqexit.exits import ExitPolicy, run_policy
from seqexit.model import MultiExitTagger

from timing import chunked_seconds, interleaved_seconds, paired_speedup

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
TASKS = {
    "ner": ("en-ner", DATA / "conll2003" / "eng.testb", "CoNLL-2003 test", "F1"),
    "pos": ("en-pos", DATA / "ud_en_ewt" / "en_ewt-ud-test.conllu", "UD English EWT 2.16 test", "UPOS accuracy"),
}
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
WINDOWS = (0, 1, 2)


@dataclass
class System:
    """One thing to measure: `run(words, batch_size)` returns a label list per sentence."""

    name: str
    kind: str  # seqexit, static, sentee, tokee, preset, hf-pipeline, hf-forward, smaller
    run: Callable[[list[list[str]], int], list[list[str]]]
    flops_speedup: float | None = None
    mean_exit_layer: float | None = None
    words_per_layer: list[int] | None = None
    score: float | None = None
    seconds: dict[str, list[float]] = field(default_factory=dict)


def score_of(gold: list[list[str]], predicted: list[list[str]], spans: bool) -> float:
    return span_scores(gold, predicted).f1 if spans else accuracy(gold, predicted)


def seqexit_system(name: str, kind: str, model: MultiExitTagger, policy: ExitPolicy, words: list[list[str]]) -> System:
    def run(batch_words, batch_size):
        return [r.labels(model) for r in run_policy(model, batch_words, policy, batch_size=batch_size).sentences]

    measured = run_policy(model, words, policy, batch_size=32)
    total = sum(measured.words_per_layer)
    mean = sum((i + 1) * n for i, n in enumerate(measured.words_per_layer)) / max(total, 1)
    return System(name, kind, run, measured.flops.speedup, mean, measured.words_per_layer)


def hf_pipeline_system(folder: Path) -> System:
    """`pipeline("token-classification")` on the sentence text (words joined by spaces); each
    word takes the label of the piece that starts at its first character."""
    from transformers import pipeline

    tagger = pipeline("token-classification", model=str(folder), device="cpu", ignore_labels=[])

    def run(batch_words, batch_size):
        texts, starts = [], []
        for words in batch_words:
            offsets, position = [], 0
            for word in words:
                offsets.append(position)
                position += len(word) + 1
            texts.append(" ".join(words))
            starts.append(offsets)
        out = []
        for pieces, offsets in zip(tagger(texts, batch_size=batch_size), starts):
            by_start = {}
            for piece in pieces:
                by_start.setdefault(piece["start"], piece["entity"])
            out.append([by_start.get(o, "O") for o in offsets])
        return out

    return System("HF pipeline (ordinary fine-tune)", "hf-pipeline", run, flops_speedup=1.0)


def hf_forward_system(folder: Path, model: MultiExitTagger) -> System:
    """The same exported classifier's raw batched forward over seqexit's own word pieces."""
    from transformers import AutoModelForTokenClassification

    hf = AutoModelForTokenClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels = [hf.config.id2label[i] for i in range(hf.config.num_labels)]
    pieces = model.pieces

    @torch.inference_mode()
    def run(batch_words, batch_size):
        encoded = pieces.encode(batch_words)
        order = sorted(range(len(batch_words)), key=lambda i: len(encoded[i][0].input_ids))
        out: list[list[str] | None] = [None] * len(batch_words)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            chunks = [encoded[i][0] for i in rows]  # test sentences fit one window
            batch = pieces.collate(chunks)
            logits = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits
            ids = logits.gather(1, batch.word_starts[..., None].expand(-1, -1, logits.shape[-1])).argmax(-1)
            for row, i in enumerate(rows):
                out[i] = [labels[j] for j in ids[row, : len(batch_words[i])].tolist()]
        return out

    return System("HF raw forward (ordinary fine-tune)", "hf-forward", run, flops_speedup=1.0)


def timing_words(words: list[list[str]], batch_size: int, small_batch_sentences: int) -> list[list[str]]:
    """The sentences timed at `batch_size`: all of them, or the first N below batch 8 (a batch-1
    pass over a whole test set per system and round would take the run hours; ratios need less)."""
    return words[:small_batch_sentences] if batch_size < 8 and small_batch_sentences else words


def time_systems(systems: Sequence[System], words: list[list[str]], batch_sizes: Sequence[int], rounds: int,
                 small_batch_sentences: int, chunk: int = 0) -> None:
    """Interleaved rounds: every system once per round, per batch size. chunk: at batch 1,
    interleave every `chunk` sentences instead (`timing.chunked_seconds`); 0: whole rounds."""
    full = words
    for batch_size in batch_sizes:
        words = timing_words(full, batch_size, small_batch_sentences)
        warmups = {s.name: (lambda s=s: s.run(words[:64], batch_size)) for s in systems}
        if chunk and batch_size == 1:
            seconds = chunked_seconds({s.name: (lambda part, s=s: s.run(part, 1)) for s in systems}, words, rounds, chunk,
                                      warmups)
        else:
            seconds = interleaved_seconds({s.name: (lambda s=s: s.run(words, batch_size)) for s in systems}, rounds,
                                          warmups=warmups)
        for system in systems:
            system.seconds[str(batch_size)] = seconds[system.name]
        print(f"  batch {batch_size}: {rounds} rounds done", flush=True)


def wall_speedup(system: System, reference: System, batch_size: str) -> float:
    return paired_speedup(reference.seconds[batch_size], system.seconds[batch_size])


def system_row(system: System, reference: System, words: list[list[str]], args) -> dict:
    """A system's score, FLOPs speed-up and, per batch size it was timed at, words/s and the
    wall-clock speed-up over `reference` (median of per-round ratios)."""
    row = {"system": system.name, "kind": system.kind, "score": system.score, "flops_speedup": system.flops_speedup,
           "mean_exit_layer": system.mean_exit_layer}
    for batch_size in map(str, args.batch_sizes):
        if batch_size in system.seconds:
            row[f"wall_speedup_bs{batch_size}"] = wall_speedup(system, reference, batch_size)
            timed_words = timing_words(words, int(batch_size), args.small_batch_sentences)
            row[f"words_per_second_bs{batch_size}"] = sum(map(len, timed_words)) / statistics.median(system.seconds[batch_size])
            row[f"seconds_bs{batch_size}"] = system.seconds[batch_size]  # per round, for paired ratios between systems
    return row


def benchmark_task(task: str, args) -> dict:
    name, path, data_name, metric = TASKS[task]
    model = load_model(find_model(getattr(args, f"{task}_model") or name))
    spans = model.config.scheme is not None
    sentences: list[Sentence] = read_file(path, span_tags=spans)[: args.limit or None]
    words, gold = [s.words for s in sentences], [s.tags for s in sentences]
    n_words = sum(map(len, words))
    print(f"{task}: {len(words)} sentences, {n_words} words", flush=True)
    layers = model.num_layers
    systems = [seqexit_system("seqexit full depth", "seqexit", model, ExitPolicy(), words)]
    systems += [seqexit_system(f"static exit {k}", "static", model, ExitPolicy.static(k), words) for k in range(1, layers)]
    systems += [seqexit_system(f"SENTEE {t}", "sentee", model, ExitPolicy.sentee(t), words) for t in THRESHOLDS]
    systems += [seqexit_system(f"TOKEE {t} w{k}", "tokee", model, ExitPolicy.tokee(t, window=k), words)
                for k in WINDOWS for t in THRESHOLDS]
    presets = load_presets(find_model(getattr(args, f"{task}_model") or name))
    systems += [seqexit_system(f"preset {n}", "preset", model, p.policy, words) for n, p in presets.items()]
    hf_folder = getattr(args, f"{task}_hf")
    if hf_folder:
        systems += [hf_pipeline_system(hf_folder), hf_forward_system(hf_folder, model)]
    for spec in getattr(args, f"{task}_small") or []:
        k, folder = spec.split("=", 1)
        small = load_model(folder)
        system = seqexit_system(f"smaller model, {k} layers", "smaller", small, ExitPolicy(), words)
        system.flops_speedup = layers / int(k)  # same width: encoder FLOPs scale with depth (exit reads aside)
        systems.append(system)
    for system in systems:
        system.score = score_of(gold, system.run(words, 32), spans)
    timed = [s for s in systems if s.kind not in ("sentee", "tokee")] + pick_grid(systems)
    time_systems(timed, words, args.batch_sizes, args.rounds, args.small_batch_sentences)
    oracle = oracle_bound(model, words)
    reference = systems[0]
    rows = [system_row(system, reference, words, args) for system in systems]
    full_score = reference.score
    tokee = [r for r in rows if r["kind"] == "tokee"]
    reach = {}
    for drop in (0.1, 0.3):
        within = [r for r in tokee if full_score - r["score"] <= drop + 1e-9]
        best = max((r["flops_speedup"] for r in within), default=1.0)
        reach[str(drop)] = {"flops_speedup": best, "share_of_oracle": (best - 1) / (oracle.flops_speedup - 1)}
    balanced = next((s for s in systems if s.name == "preset balanced"), None)
    timed_at = {str(b): len(timing_words(words, b, args.small_batch_sentences)) for b in args.batch_sizes}
    return {"task": task, "data": data_name, "metric": metric, "sentences": len(words), "words": n_words,
            "timed_sentences": timed_at,
            "rows": rows, "oracle": {"flops_speedup": oracle.flops_speedup, "mean_exit_layer": oracle.mean_exit_layer,
                                     "tokee_reach": reach},
            "balanced_histogram": balanced.words_per_layer if balanced else None}


def pick_grid(systems: Sequence[System]) -> list[System]:
    """The TOKEE/SENTEE settings worth timing: their FLOPs frontier (score vs FLOPs)."""
    picked = []
    for kind in ("tokee", "sentee"):
        best: list[System] = []
        for system in sorted((s for s in systems if s.kind == kind), key=lambda s: (-s.flops_speedup, -s.score)):
            if not best or system.score > best[-1].score:
                best.append(system)
        picked += best
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for task in TASKS:
        parser.add_argument(f"--{task}-model", default=None, help=f"default: the shipped {TASKS[task][0]}")
        parser.add_argument(f"--{task}-hf", type=Path, default=None, help="exported ordinary fine-tune (seqexit.export)")
        parser.add_argument(f"--{task}-small", nargs="*", default=[], help="K=MODEL_DIR smaller static models")
    add_run_arguments(parser, small_batch_sentences=1000)
    parser.add_argument("--merge", action="store_true", help="keep the other tasks already in OUTPUT/results.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"command": "python " + " ".join(sys.argv), "environment": {
        "machine": f"{platform.machine()} CPU", "threads": args.threads, "torch": torch.__version__,
        "python": platform.python_version()}, "tasks": {}}
    args.output.mkdir(parents=True, exist_ok=True)
    stored = args.output / "results.json"
    if args.merge and stored.is_file():
        results["tasks"] = json.loads(stored.read_text())["tasks"]
    for task in args.tasks:  # written after each task, so a long run keeps what it measured
        results["tasks"][task] = benchmark_task(task, args) | {"command": results["command"]}
        stored.write_text(json.dumps(results, indent=1) + "\n")
    for task, result in results["tasks"].items():
        plot_task(result, args.output / f"results_{task}.png", args.output / f"results_{task}_exit_layers.png")
    print(write_report(args.output))


def add_run_arguments(parser: argparse.ArgumentParser, *, small_batch_sentences: int) -> None:
    """The options of every side-by-side benchmark: tasks, batch sizes, rounds, threads, a
    smoke-run limit and the output folder."""
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-batch-sentences", type=int, default=small_batch_sentences,
                        help="time batch sizes below 8 on the first N test sentences (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N test sentences only (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE)


SECTIONS = ("profile_engine.md", "ray_scaling.md", "int8_speed.md", "exit_criteria.md", "exits_that_see_more.md",
            "training_recipes.md", "adopt_speed.md")  # written by the scripts of these names


def task_model_and_test(task: str, args) -> tuple[Path, MultiExitTagger, bool, list[Sentence]]:
    """A task's model folder (`--{task}-model` or the shipped one), its model, whether its tags
    are spans, and its test set (the first `--limit` sentences)."""
    name, path = TASKS[task][:2]
    folder = find_model(getattr(args, f"{task}_model") or name)
    model = load_model(folder)
    spans = model.config.scheme is not None
    return folder, model, spans, read_file(path, span_tags=spans)[: args.limit or None]


def report_header(title: str, results: dict, cpu: str, backend: str = "int8 backend") -> list[str]:
    """The heading and the how-it-was-measured line of a side-by-side report."""
    env = results["environment"]
    return [f"## {title}", "",
            f"`{results['command']}` ({cpu}, {env['threads']} threads, torch {env['torch']}, onnxruntime "
            f"{env['onnxruntime']}, {backend} {env['int8_backend']}; one run, timings interleaved round by round, "
            "ratios are medians of per-round ratios to torch fp32 full depth).", ""]


def system_table(result: dict) -> list[str]:
    """Markdown lines for one task of a side-by-side run: heading, one row per system (score,
    FLOPs speed-up, words/s and ratio per batch size), and which sentences small batches timed."""
    sizes = [k.removeprefix("wall_speedup_bs") for k in result["rows"][0] if k.startswith("wall_speedup_bs")]
    lines = [f"### {result['data']} ({result['metric']}, {result['sentences']} sentences)", "",
             "| system | " + result["metric"] + " | FLOPs x | " + " | ".join(
                 f"words/s bs{b} | x torch fp32 bs{b}" for b in sizes) + " |",
             "|---|---|---|" + "---|---|" * len(sizes)]
    for r in result["rows"]:
        flops = f"{r['flops_speedup']:.2f}" if r["flops_speedup"] else "-"
        lines.append(f"| {r['system']} | {r['score']:.2f} | {flops} | " + " | ".join(
            f"{r[f'words_per_second_bs{b}']:,.0f} | {r[f'wall_speedup_bs{b}']:.2f}" for b in sizes) + " |")
    timed = result["timed_sentences"]
    small = f"Batch sizes below 8 are timed on the first {min(timed.values())} sentences."
    return lines + ["", small if len(set(timed.values())) > 1 else "", ""]


def write_section(output: Path, name: str, result: dict, text: str) -> None:
    """OUTPUT/NAME.json and NAME.md for one of SECTIONS, then RESULTS.md again if the main
    results are there, so the report always carries the newest section."""
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (output / f"{name}.md").write_text(text)
    print(text)
    if (output / "results.json").is_file():
        write_report(output)


def write_report(output: Path) -> str:
    """RESULTS.md from OUTPUT/results.json plus the sections the other benchmark scripts write
    beside it (SECTIONS), so that any of them leaves one whole report."""
    text = report(json.loads((output / "results.json").read_text()))
    for name in SECTIONS:
        if (output / name).is_file():
            text += "\n" + (output / name).read_text()
    (output / "RESULTS.md").write_text(text)
    return text


def best_within(rows: list[dict], full: float, drop: float, key: str) -> dict | None:
    """The early-exit row (TOKEE) with the highest `key` among those within `drop` of full depth."""
    within = [r for r in rows if r["kind"] == "tokee" and full - r["score"] <= drop + 1e-9 and key in r]
    return max(within, key=lambda r: r[key], default=None)


def report(results: dict) -> str:
    env = results["environment"]
    lines = ["# seqexit against its peers", "",
             f"{env['machine']}, {env['threads']} threads, torch {env['torch']}, Python {env['python']}. "
             "Wall-clock speed-ups are medians over interleaved rounds of (seqexit full depth's time / the system's "
             "time) in the same round; FLOPs speed-ups are analytic (`seqexit/exits/flops.py`).", "",
             "Commands (one per task when tasks were measured apart with --merge): "
             + "; ".join(sorted({f"`{r.get('command', results['command'])}`" for r in results["tasks"].values()})), "",
             "Systems. *seqexit* rows are the shipped model (casing features, two-stage + SSFT) under each exit policy. "
             "*HF pipeline* and *HF raw forward* are the same backbone fine-tuned the ordinary way (last layer only, "
             "no casing features: `BertForTokenClassification` has no input for them), exported with "
             "`seqexit.export.to_hf_token_classifier` and served by `pipeline(\"token-classification\")` and by a plain "
             "batched forward over the same word pieces. *Smaller model, k layers* is the backbone's first k layers "
             "fine-tuned as an ordinary tagger with casing features (`seqexit train --casing --layers k --recipe joint "
             "--exit-weights last --no-ssft`, the shipped model's epochs and learning rate): what DistilBERT-style "
             "compression buys at the same width.", ""]
    for task, r in results["tasks"].items():
        rows, full = r["rows"], r["rows"][0]["score"]
        timed = ", ".join(f"batch {b}: {n}" for b, n in r.get("timed_sentences", {}).items())
        lines += [f"## {r['data']}: {r['metric']} ({r['sentences']} sentences, {r['words']} words)", "",
                  f"Scores are on the whole test set; sentences timed per batch size: {timed}.", "",
                  f"![score vs speed-up](results_{task}.png)", "",
                  "| system | score | drop | FLOPs speed-up | mean exit layer | wall speed-up, batch 32 | batch 1 | words/s, batch 32 | batch 1 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            cell = lambda key, fmt: (fmt.format(row[key]) if row.get(key) is not None else "-")  # noqa: E731
            lines.append(f"| {row['system']} | {row['score']:.2f} | {full - row['score']:.2f} | {cell('flops_speedup', '{:.2f}x')} | "
                         f"{cell('mean_exit_layer', '{:.2f}')} | {cell('wall_speedup_bs32', '{:.2f}x')} | {cell('wall_speedup_bs1', '{:.2f}x')} | "
                         f"{cell('words_per_second_bs32', '{:,.0f}')} | {cell('words_per_second_bs1', '{:,.0f}')} |")
        oracle = r["oracle"]
        lines += ["", f"**Oracle bound:** {oracle['flops_speedup']:.2f}x FLOPs (mean exit layer {oracle['mean_exit_layer']:.2f}) "
                  "at no loss by construction. TOKEE reaches " + ", ".join(
                      f"{v['flops_speedup']:.2f}x within {d} points ({v['share_of_oracle']:.0%} of the oracle's saving)"
                      for d, v in oracle["tokee_reach"].items()) + ".", ""]
        lines += comparisons(rows, full)
        if r.get("balanced_histogram"):
            lines += [f"Exit layers of the balanced preset: ![histogram](results_{task}_exit_layers.png) "
                      + " / ".join(f"layer {i + 1}: {n}" for i, n in enumerate(r["balanced_histogram"])), ""]
    return "\n".join(lines) + "\n"


def comparisons(rows: list[dict], full: float) -> list[str]:
    """Plain sentences: the headline targets and where a peer beats early exit."""
    out = []
    hf = next((r for r in rows if r["kind"] == "hf-pipeline"), None)
    best = best_within(rows, full, 0.3, "wall_speedup_bs32")
    if best is not None:
        out.append(f"- Fastest TOKEE within 0.3 points of full depth: `{best['system']}`, {best['score']:.2f}, "
                   f"{best['wall_speedup_bs32']:.2f}x wall-clock at batch 32 (target 2.0x: "
                   f"{'met' if best['wall_speedup_bs32'] >= 2.0 else 'not met'})"
                   + (f", {best['words_per_second_bs32'] / hf['words_per_second_bs32']:.2f}x the words/s of the HF pipeline "
                      f"(target 3x: {'met' if best['words_per_second_bs32'] >= 3 * hf['words_per_second_bs32'] else 'not met'})"
                      if hf and "words_per_second_bs32" in hf else "") + ".")
    exits = [r for r in rows if r["kind"] in ("tokee", "sentee", "preset", "static") and "wall_speedup_bs32" in r]
    for small in (r for r in rows if r["kind"] == "smaller" and "wall_speedup_bs32" in r):
        rivals = [r for r in exits if r["wall_speedup_bs32"] >= small["wall_speedup_bs32"] - 1e-9]
        rival = max(rivals, key=lambda r: r["score"], default=None)
        if rival is None:
            out.append(f"- {small['system']} ({small['score']:.2f} at {small['wall_speedup_bs32']:.2f}x): no early-exit "
                       "setting measured here is that fast.")
        elif rival["score"] >= small["score"]:
            out.append(f"- {small['system']} ({small['score']:.2f} at {small['wall_speedup_bs32']:.2f}x) is beaten by "
                       f"`{rival['system']}` ({rival['score']:.2f} at {rival['wall_speedup_bs32']:.2f}x).")
        else:
            out.append(f"- **{small['system']} is better at its speed**: {small['score']:.2f} at "
                       f"{small['wall_speedup_bs32']:.2f}x, against {rival['score']:.2f} for the best early exit at least "
                       f"as fast (`{rival['system']}`, {rival['wall_speedup_bs32']:.2f}x).")
    return out + [""]


def plot_task(result: dict, path: Path, histogram_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"seqexit": ("k", "*"), "static": ("tab:gray", "s"), "sentee": ("tab:blue", "o"), "tokee": ("tab:red", "o"),
              "preset": ("tab:purple", "D"), "hf-pipeline": ("tab:green", "^"), "hf-forward": ("tab:olive", "v"),
              "smaller": ("tab:orange", "P")}
    for axis, key, label in ((axes[0], "wall_speedup_bs32", "wall-clock speed-up, batch 32"),
                             (axes[1], "flops_speedup", "FLOPs speed-up")):
        for kind, (color, marker) in styles.items():
            points = sorted((r[key], r["score"]) for r in rows if r["kind"] == kind and r.get(key) is not None)
            if not points:
                continue
            if kind in ("tokee", "sentee"):  # the grid as dots, its frontier as a line
                axis.plot(*zip(*points), marker=marker, color=color, linestyle="none", alpha=0.35)
                frontier = []
                for x, y in sorted(points, reverse=True):
                    if not frontier or y > frontier[-1][1]:
                        frontier.append((x, y))
                axis.plot(*zip(*frontier), marker=marker, color=color, label=f"{kind} (frontier)")
            else:
                axis.plot(*zip(*points), marker=marker, color=color, label=kind, linestyle="-" if kind == "static" else "none")
        if key == "flops_speedup":
            axis.axvline(result["oracle"]["flops_speedup"], color="tab:red", linestyle=":", label="oracle (no loss)")
        axis.set_xlabel(label)
        axis.set_ylabel(result["metric"])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(result["data"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if result.get("balanced_histogram"):
        fig, axis = plt.subplots(figsize=(5, 3.5))
        counts = result["balanced_histogram"]
        axis.bar(range(1, len(counts) + 1), counts, color="tab:purple")
        axis.set_xlabel("exit layer")
        axis.set_ylabel("words")
        axis.set_title(f"{result['data']}: balanced preset")
        fig.tight_layout()
        fig.savefig(histogram_path, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
