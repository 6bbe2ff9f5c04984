"""The Ray engine (`seqexit[ray]`): same output as the local engine, in order, each sentence once."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from seqexit.bundle import save_presets
from seqexit import Tagger
from seqexit.exits import ExitPolicy

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'seqexit[ray]'")
from seqexit.distributed import SentenceTagger, start_ray, tag_on_ray  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.integration
def test_tag_on_ray_equals_the_local_engine_in_order(local_ray, ner_model, corpus):
    sentences = corpus(150)
    policy = ExitPolicy.tokee(0.3, window=1)
    got = list(tag_on_ray(sentences, str(ner_model), policy=policy, workers=2, rows_per_call=16, batch_size=8))
    want = Tagger.load(ner_model, policy=policy).tag(sentences)
    assert len(got) == len(want) == 150
    for g, w, s in zip(got, want, sentences):
        assert g.words == s.words and g.source is s
        assert (g.labels, g.exit_layers) == (w.labels, w.exit_layers)
        assert [(x.start, x.end, x.label) for x in g.spans] == [(x.start, x.end, x.label) for x in w.spans]


@pytest.mark.slow
@pytest.mark.integration
def test_raw_text_rows_are_split_into_words_and_tagged_like_the_local_engine(local_ray, ner_model):
    from seqexit.distributed import tag_dataset

    texts = ["John Smith was in Berlin on Monday.", "Mary said  it, in Paris!", "Reuters"]
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset = ray.data.from_items([{"text": t} for t in texts])
    rows = list(tag_dataset(dataset, str(ner_model), workers=1).iter_rows())
    assert [list(r["words"]) for r in rows] == [
        ["John", "Smith", "was", "in", "Berlin", "on", "Monday", "."], ["Mary", "said", "it", ",", "in", "Paris", "!"], ["Reuters"]]
    want = Tagger.load(ner_model).tag([list(r["words"]) for r in rows])
    assert [list(r["labels"]) for r in rows] == [w.labels for w in want]
    assert [r["text"] for r in rows] == texts


@pytest.mark.slow
@pytest.mark.integration
def test_cli_ray_engine_writes_what_the_local_engine_writes(local_ray, ner_model, tmp_path, corpus):
    conll = "\n\n".join("\n".join(f"{w} O" for w in s.words) for s in corpus(60)) + "\n"
    (tmp_path / "in.conll").write_text(conll)
    local = runner.invoke(app, ["tag", str(tmp_path / "in.conll"), "-m", str(ner_model), "--mode", "tokee",
                                "--threshold", "0.3", "-f", "jsonl"])
    distributed = runner.invoke(app, ["tag", str(tmp_path / "in.conll"), "-m", str(ner_model), "--mode", "tokee",
                                      "--threshold", "0.3", "-f", "jsonl", "--engine", "ray", "--workers", "2"])
    assert local.exit_code == distributed.exit_code == 0, distributed.output
    assert distributed.stdout == local.stdout and len(local.stdout.splitlines()) == 60


def test_malformed_input_fails_before_any_work_with_file_and_line(ner_model, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr("seqexit.distributed.start_ray", lambda *a, **k: started.append(1))
    (tmp_path / "bad.jsonl").write_text('{"tokens": ["a"]}\n{"tokens": oops}\n')
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["tag", str(tmp_path / "bad.jsonl"), "-m", str(ner_model), "--engine", "ray", "-o", str(out)])
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output
    assert not started and not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_without_ray_the_engine_is_a_one_line_usage_error(ner_model, tmp_path, monkeypatch):
    def missing():
        raise ImportError('the Ray engine needs Ray Data: pip install "seqexit[ray]"')

    monkeypatch.setattr("seqexit.distributed.require_ray", missing)
    (tmp_path / "in.txt").write_text("John said so.\n")
    result = runner.invoke(app, ["tag", str(tmp_path / "in.txt"), "-m", str(ner_model), "--engine", "ray"])
    assert result.exit_code == 2 and 'pip install "seqexit[ray]"' in result.output
    assert len(result.output.strip().splitlines()) == 1


class DiesOnce(SentenceTagger):
    """An actor whose process dies in the middle of its second batch, once per run."""

    marker = None

    def __call__(self, batch):
        import os
        from pathlib import Path

        self.calls = getattr(self, "calls", 0) + 1
        marker = Path(self.marker)
        if self.calls == 2 and marker.exists():
            marker.unlink()
            os._exit(1)
        return super().__call__(batch)


@pytest.mark.slow
@pytest.mark.integration
def test_a_worker_that_dies_mid_run_is_replaced_and_the_output_is_complete(local_ray, ner_model, tmp_path, monkeypatch,
                                                                             corpus):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    marker = tmp_path / "die-once"
    marker.write_text("")
    monkeypatch.setattr(DiesOnce, "marker", str(marker))
    sentences = corpus(80)
    policy = ExitPolicy.tokee(0.3, window=1)
    got = list(tag_on_ray(sentences, str(ner_model), policy=policy, workers=1, rows_per_call=10, batch_size=8,
                          tagger_class=DiesOnce))
    assert not marker.exists(), "the worker did die"
    want = Tagger.load(ner_model, policy=policy).tag(sentences)
    assert [(g.labels, g.exit_layers) for g in got] == [(w.labels, w.exit_layers) for w in want]


@pytest.mark.slow
@pytest.mark.integration
def test_tag_dataset_takes_a_policy_or_a_calibrated_preset(local_ray, ner_model, tmp_path, corpus):
    import shutil

    from seqexit.distributed import tag_dataset
    from seqexit.exits import Preset

    dataset = ray.data.from_items([{"words": s.words} for s in corpus(40)])
    with pytest.raises(ValueError, match="not both"):
        tag_dataset(dataset, str(ner_model), policy=ExitPolicy(), preset="fast")
    with pytest.raises(ValueError, match="has no presets"):
        tag_dataset(dataset, str(ner_model), preset="fast")
    model = shutil.copytree(ner_model, tmp_path / "model")
    policy = ExitPolicy.tokee(0.4, window=1)
    save_presets(model, [Preset(name="fast", policy=policy, metric="f1", score=1.0, full_score=1.0, flops_speedup=2.0,
                                mean_exit_layer=2.0, data="dev", sentences=40, max_drop=1.0)])
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    rows = list(tag_dataset(dataset, str(model), preset="fast", workers=1).iter_rows())
    want = Tagger.load(model, policy=policy).tag([s.words for s in corpus(40)])
    assert [(list(r["labels"]), list(r["exit_layers"])) for r in rows] == [(w.labels, w.exit_layers) for w in want]
