"""Process faults: worker processes (fork, spawn, forkserver), signals mid-run, a full disk, two
writers at once. Whatever happens, an output file or model folder is complete or absent, and
presets.json is a valid file that keeps every writer's changes.

Subprocess tests run under a timeout, so that a hang (the fork deadlock of issue 21) fails the
test instead of hanging the run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from seqexit import bundle
from seqexit.bundle import load_all_presets, save_model, save_presets
from seqexit.data import Sentence
from seqexit.exits import ExitPolicy, Preset
from seqexit.output import ConllWriter, write_conll

from tests.conftest import EXIT_LABELS, EXIT_SENTENCES

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = int(os.environ.get("SEQEXIT_TEST_TIMEOUT", "240"))  # s per subprocess (imports alone: ~10 s on 2 busy cores)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def ner_folder(make_tagger, tmp_path_factory) -> Path:
    """A saved 4-layer random NER model (max 64 word pieces)."""
    return save_model(make_tagger(4), tmp_path_factory.mktemp("faults") / "ner")


def _preset(name: str, quantize: str | None = None) -> Preset:
    return Preset(name=name, policy=ExitPolicy.tokee(0.2), metric="f1", score=90.0, full_score=91.0, flops_speedup=2.0,
                  mean_exit_layer=2.0, max_drop=1.0, quantize=quantize)


# --- nlp.pipe(n_process=2) ------------------------------------------------------------------------

PIPE_SCRIPT = textwrap.dedent('''
    import json, multiprocessing, sys
    import spacy, torch

    def annotations(docs):
        return [[[e.start, e.end, e.label_] for e in d.ents] + [[t._.exit_layer for t in d]] for d in docs]

    if __name__ == "__main__":
        model, method, start, saved = sys.argv[1:5]
        multiprocessing.set_start_method(method, force=True)
        torch.set_num_threads(2)  # an OpenMP pool in the parent, also on a 1-core runner
        texts = [f"John Smith was in Paris on Monday {i} . the European Union said it was new" for i in range(24)]
        if start == "load":  # right after spacy.load, before any call
            nlp = spacy.blank("en"); nlp.add_pipe("seqexit_ner", config={"model": model})
            nlp.to_disk(saved)
            nlp = spacy.load(saved)
        else:  # after the parent has tagged
            nlp = spacy.blank("en"); nlp.add_pipe("seqexit_ner", config={"model": model})
            nlp("Warm up in Paris .")
        many = annotations(nlp.pipe(texts, n_process=2, batch_size=4))
        one = annotations(nlp.pipe(texts, n_process=1, batch_size=4))
        print(json.dumps({"one": one, "many": many}))
''')


def _run_pipe(tmp_path: Path, model: Path | str, method: str, start: str) -> dict:
    """Run PIPE_SCRIPT in its own process group; on a timeout the whole group (the hung
    workers too) is killed and the test fails."""
    script = tmp_path / "pipe_script.py"
    script.write_text(PIPE_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(model), method, start, str(tmp_path / "saved")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nlp.pipe(n_process=2) under {method} ({start}) hung: no result in {TIMEOUT} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group: workers left behind by a hung or failed run
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(("method", "start", "model"), [
    ("fork", "call", None), ("fork", "call", "en-ner"), ("fork", "load", "en-ner"), ("spawn", "call", None),
    ("forkserver", "call", None),
])
def test_pipe_n_process_matches_one_process(ner_folder, tmp_path, method, start, model):
    """Two worker processes after the parent has used the model (or right after spacy.load of
    a saved pipeline: loading the shipped model starts the OpenMP pool, the tiny one's does not):
    no hang (fork used to deadlock in the inherited OpenMP pool), the annotations of one."""
    result = _run_pipe(tmp_path, model or ner_folder, method, start)
    assert len(result["many"]) == 24
    assert result["many"] == result["one"]


# --- signals mid-run: seqexit tag BIG -o out.conll -------------------------------------------------

def _big_conll(path: Path, sentences: int) -> Path:
    with path.open("w") as out:
        for i in range(sentences):
            words = EXIT_SENTENCES[i % len(EXIT_SENTENCES)]
            out.write("".join(f"{w}\tO\n" for w in words) + "\n")
    return path


def _temps(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*"))


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_tag_leaves_output_complete_or_absent(ner_folder, tmp_path, sig):
    sentences = 60000
    big = _big_conll(tmp_path / "big.conll", sentences)
    out = tmp_path / "out.conll"
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "tag", str(big), "-m", str(ner_folder), "-o", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:  # tagging has begun writing
            temps = _temps(tmp_path, out.name)
            if temps and temps[0].exists() and temps[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        interrupted = proc.poll() is None
        if interrupted:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _temps(tmp_path, out.name), f"temporary output left behind: {_temps(tmp_path, out.name)}"
    if out.exists():  # finished before the signal: then whole
        assert out.read_text().count("\n\n") == sentences
    else:
        assert interrupted
        assert proc.returncode in (130, 143, -sig), (proc.returncode, stderr[-2000:])


# --- a full disk ---------------------------------------------------------------------------------

class _FullDisk:
    """A file object whose writes fail with ENOSPC (at `write`, or only at the final flush)."""

    def __init__(self, real, at: str) -> None:
        self.real, self.at = real, at

    def write(self, data):
        if self.at == "write":
            self.real.write(data[: len(data) // 2])  # half of it reached the disk
            self.real.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real.write(data)

    def close(self):
        if self.at == "close" and not self.real.closed:
            self.real.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.real.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture()
def full_disk(monkeypatch):
    """full_disk(at): every file opened through os.fdopen from now on fails with ENOSPC `at`."""

    def install(at: str) -> None:
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDisk(real_fdopen(*a, **k), at))

    return install


@pytest.mark.parametrize("at", ["write", "close"])
def test_full_disk_while_writing_output_leaves_no_file(tmp_path, full_disk, at):
    out = tmp_path / "out.conll"
    sentences = [Sentence(list(words)) for words in EXIT_SENTENCES]
    labels = [["O"] * len(words) for words in EXIT_SENTENCES]
    full_disk(at)
    with pytest.raises(OSError) as err:
        write_conll(sentences, labels, out, scheme=None)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_full_disk_while_writing_output_keeps_previous_file(tmp_path, full_disk):
    out = tmp_path / "out.conll"
    out.write_text("previous\tO\n\n")
    full_disk("write")
    with pytest.raises(OSError):
        with ConllWriter(out) as writer:
            writer.write_labels(["john"], ["B-PER"])
    assert out.read_text() == "previous\tO\n\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.conll"]


@pytest.mark.parametrize("fails", ["weights", "config"])
def test_full_disk_while_saving_a_new_model_folder_leaves_no_folder(make_tagger, tmp_path, monkeypatch, fails):
    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fails == "weights":
        monkeypatch.setattr(bundle, "save_file", lambda tensors, path, **kw: full(path))
    else:
        monkeypatch.setattr(bundle, "_write_json", full)
    with pytest.raises(OSError) as err:
        save_model(make_tagger(4), tmp_path / "models" / "ner")
    assert err.value.errno == errno.ENOSPC
    assert list((tmp_path / "models").iterdir()) == []  # neither the folder nor its temporary sibling


def test_save_model_to_a_new_folder_renames_a_complete_folder(make_tagger, tmp_path):
    folder = save_model(make_tagger(4), tmp_path / "ner")
    assert folder == tmp_path / "ner"
    assert {"seqexit.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["ner"]
    mask = os.umask(0)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    assert bundle.load_model(folder).labels == EXIT_LABELS


def test_full_disk_while_saving_presets_keeps_previous_file(ner_folder, tmp_path, full_disk):
    import shutil

    folder = Path(shutil.copytree(ner_folder, tmp_path / "ner"))
    save_presets(folder, [_preset("old")])
    before = (folder / "presets.json").read_text()
    full_disk("write")
    with pytest.raises(OSError):
        save_presets(folder, [_preset("new")])
    assert (folder / "presets.json").read_text() == before
    assert not list(folder.glob(".presets.json.*"))


# --- two writers of presets.json at once ----------------------------------------------------------

def test_concurrent_save_presets_keep_both_sections(ner_folder, tmp_path, monkeypatch):
    """Two saves of different sections at once, each slow between reading and writing the file:
    the folder lock serialises the read-modify-writes, so neither section is lost."""
    import shutil

    folder = Path(shutil.copytree(ner_folder, tmp_path / "ner"))
    real_load = bundle.load_all_presets

    def slow_load(path):
        sections = real_load(path)
        time.sleep(0.3)
        return sections

    monkeypatch.setattr(bundle, "load_all_presets", slow_load)
    errors = []

    def save(presets, quantize):
        try:
            save_presets(folder, presets, quantize=quantize)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=save, args=([_preset("float")], None)),
               threading.Thread(target=save, args=([_preset("int", "int8")], "int8"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    sections = real_load(folder)
    assert list(sections[None]) == ["float"] and list(sections["int8"]) == ["int"]
    assert not list(folder.glob(".presets.json.*"))


def test_save_presets_merge_keeps_other_presets_of_the_section(ner_folder, tmp_path):
    import shutil

    folder = Path(shutil.copytree(ner_folder, tmp_path / "ner"))
    save_presets(folder, [_preset("a")])
    save_presets(folder, [_preset("b")], merge=True)
    assert list(load_all_presets(folder)[None]) == ["a", "b"]
    save_presets(folder, [_preset("c")])
    assert list(load_all_presets(folder)[None]) == ["c"]


@pytest.mark.slow
@pytest.mark.integration
def test_two_calibrate_runs_at_once_leave_valid_presets(ner_folder, tmp_path):
    import shutil

    folder = Path(shutil.copytree(ner_folder, tmp_path / "ner"))
    dev = tmp_path / "dev.conll"
    tags = [["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O", "O"], ["B-ORG"],
            ["O", "B-ORG", "I-ORG", "O", "O", "B-ORG", "I-ORG", "O", "O", "O", "O"], ["B-PER", "O", "B-LOC"],
            ["B-LOC", "O", "B-LOC", "O", "B-LOC", "O", "O", "O", "O"]]
    dev.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(words, labels)) + "\n"
                           for words, labels in zip(EXIT_SENTENCES, tags)) * 4)
    runs = [subprocess.Popen([sys.executable, "-m", "cli.main", "calibrate", str(folder), str(dev), "--name", name,
                              "--max-drop", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                             cwd=ROOT) for name in ("first", "second")]
    try:
        for run in runs:
            _, stderr = run.communicate(timeout=TIMEOUT)
            assert run.returncode == 0, stderr[-2000:]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    presets = load_all_presets(folder)[None]  # valid JSON, readable presets
    assert {"first", "second", "accurate", "balanced", "fast"} <= set(presets)
    assert not list(folder.glob(".presets.json.*"))
