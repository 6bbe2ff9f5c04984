"""How long does `seqexit tag` take to start: a one-line file, end to end?

Times child processes (median of --runs, interleaved round by round so that a shared machine's
drift hits both sides alike), each checkout run as `python -m cli.main` with PYTHONPATH set to
it, so both use this virtual environment:

- `python -c "import seqexit"`;
- `seqexit --help`;
- `seqexit tag ONE_LINE_FILE -m en-ner`.

--baseline PATH times another checkout beside this one (`git worktree add /tmp/seqexit-base
HEAD` gives the state before a change). The breakdown runs `tag` once more per checkout with
timers wrapped around the stages (model load, tokenizer, spaCy pipeline, tagging), installed
as their modules load, so lazy and eager imports are charged to the stage that triggers them.
Writes benchmarks/startup.{json,md}.

Usage: python benchmarks/startup.py [--baseline /tmp/seqexit-base] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEXT = "Angela Merkel visited Paris .\n"

# (module, attribute path, stage): timed wherever they are called from
STAGES = [
    ("seqexit.bundle", "load_model", "model load (all)"),
    ("seqexit.bundle", "_build_encoder", "encoder built"),
    ("seqexit.backbones", "load_tokenizer", "tokenizer"),
    ("seqexit.compact", "decode_deltas", "weights: compact deltas decoded"),
    ("seqexit.data.text", "default_nlp", "spaCy text pipeline"),
    ("seqexit.tagger", "Tagger.tag", "tagging"),
]


def commands(file: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {"import seqexit": [python, "-c", "import seqexit"],
            "seqexit --help": [python, "-m", "cli.main", "--help"],
            "seqexit tag (one line)": [python, "-m", "cli.main", "tag", str(file), "-m", "en-ner"]}


def child_env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def wall_seconds(command: list[str], checkout: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=checkout, env=child_env(checkout), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def breakdown(file: Path, checkout: Path) -> dict[str, float]:
    """Seconds per stage of one `tag` run in `checkout` (this script re-run with --stages)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--stages", str(file)], cwd=checkout, env=child_env(checkout),
                         check=True, capture_output=True, text=True).stdout
    total = time.perf_counter() - started
    stages = json.loads(out.strip().splitlines()[-1])
    stages["interpreter start and exit"] = total - stages.pop("in process")
    stages["total"] = total
    return stages


class _StageTimers(importlib.abc.MetaPathFinder):
    """Wraps the STAGES functions with timers right after their module is executed."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    def find_spec(self, name, path, target=None):
        wanted = [(attr, stage) for module, attr, stage in STAGES if module == name]
        if not wanted:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module) -> None:
            exec_module(module)
            for attr, stage in wanted:
                owner, _, leaf = attr.rpartition(".")
                holder = getattr(module, owner) if owner else module
                setattr(holder, leaf, self.timed(getattr(holder, leaf), stage))

        spec.loader.exec_module = exec_and_wrap
        return spec

    def timed(self, function, stage: str):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
        return run


def run_stages(file: str) -> None:
    """In the child: `seqexit tag FILE -m en-ner` with stage timers; prints the seconds as JSON."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    sys.meta_path.insert(0, _StageTimers(seconds))
    sys.path.insert(0, os.getcwd())
    import_started = time.perf_counter()
    from cli.main import app
    seconds["import cli.main"] = time.perf_counter() - import_started
    sys.argv = ["seqexit", "tag", file, "-m", "en-ner"]
    try:
        app()
    except SystemExit:
        pass
    seconds["in process"] = time.perf_counter() - started
    if "model load (all)" in seconds:
        parts = ("encoder built", "tokenizer", "weights: compact deltas decoded")
        seconds["model load: rest (safetensors, load_state_dict, exits)"] = (
            seconds.pop("model load (all)") - sum(seconds.get(p, 0.0) for p in parts))
    seconds["rest of the command (its imports, policy, output)"] = seconds["in process"] - sum(
        v for k, v in seconds.items() if k != "in process")
    print(json.dumps(seconds))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "unknown")


def markdown(result: dict) -> str:
    sides = list(result["median_seconds"])
    head = "| command | " + " | ".join(f"{s} (s)" for s in sides) + (" | before / after |" if len(sides) == 2 else " |")
    lines = ["# `seqexit tag` start-up", "",
             f"CPU: {result['cpu']}, {result['threads']} threads (`os.cpu_count()`); Python {result['python']}. "
             f"Median of {result['runs']} runs per command, child processes, interleaved round by round. "
             f"Load average (1 min) at start/end: {result['load_average'][0]:.1f}/{result['load_average'][1]:.1f} "
             "(a machine shared with other work: absolute times drift, the ratio is the measure).", "",
             head, "|" + "---|" * (len(sides) + 1 + (len(sides) == 2))]
    for command in result["commands"]:
        values = [result["median_seconds"][s][command] for s in sides]
        ratio = f" | {values[0] / values[1]:.2f}x" if len(values) == 2 else ""
        lines.append(f"| `{command}` | " + " | ".join(f"{v:.2f}" for v in values) + ratio + " |")
    lines += ["", "## Where one `seqexit tag` run goes (seconds, median of 3 timed runs per stage)", "",
              "| stage | " + " | ".join(sides) + " |", "|" + "---|" * (len(sides) + 1)]
    stages = list(dict.fromkeys(k for s in sides for k in result["breakdown"][s]))
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(f"{result['breakdown'][s].get(stage, 0.0):.2f}" for s in sides) + " |")
    return "\n".join(lines + ["", result["notes"], ""])


NOTES = ("Stages include the imports they trigger (before: everything is imported by `import cli.main`; after: "
         "torch/transformers/spaCy load in the stage that first needs them). Stage timers add a little overhead, "
         "so their total differs slightly from the medians above. What is left after the change is imports the "
         "command needs: torch (most of `import cli.main`) and, for raw text, spaCy; a BERT tagger loads on seqexit's "
         "own BERT modules and tokenizer reader, so transformers (and the sympy, torch._dynamo and scipy its model "
         "classes import) is not imported at all. On a busy machine torch's threads also wait for each other in every op "
         "(decode, tagging): compare with OMP_NUM_THREADS=1.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to time beside this one (the before state)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stages", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        return run_stages(args.stages)
    load_before = os.getloadavg()[0]
    sides = {**({"before": args.baseline.resolve()} if args.baseline else {}), "after": ROOT}
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "one.txt"
        file.write_text(TEXT, encoding="utf-8")
        runs = commands(file)
        seconds = {side: {name: [] for name in runs} for side in sides}
        for _ in range(args.runs):
            for name, command in runs.items():
                for side, checkout in sides.items():
                    seconds[side][name].append(wall_seconds(command, checkout))
        runs_of = {side: [breakdown(file, checkout) for _ in range(3)] for side, checkout in sides.items()}
        stages = {side: {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}
                  for side, runs in runs_of.items()}
    result = {"cpu": cpu_name(), "threads": os.cpu_count(), "python": platform.python_version(), "runs": args.runs,
              "commands": list(runs), "checkouts": {s: str(p) for s, p in sides.items()}, "seconds": seconds,
              "median_seconds": {s: {n: statistics.median(v) for n, v in t.items()} for s, t in seconds.items()},
              "breakdown": stages, "notes": NOTES,
              "load_average": [load_before, os.getloadavg()[0]]}
    (HERE / "startup.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (HERE / "startup.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
