"""The ONNX runtime against the torch engine on tiny random models: same labels and exit layers
for every mode and criterion, int8 that does not depend on the batch, the graph cache, and the
`runtime` switch through the library, the CLI and the spaCy config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from seqexit import Tagger
from seqexit.bundle import save_model
from seqexit.exits import ExitPolicy, run_exits, run_policy
from seqexit.exits.criteria import CRITERIA
from seqexit.exits.learned import LearnedExitHeads
from seqexit.exits.signals import HaltingSignals
from seqexit.runtime import apply_runtime, check_runtime, pick_runtime
from seqexit.runtime import onnx_session

pytest.importorskip("onnxruntime", reason="the ONNX runtime is an extra: pip install 'seqexit[onnx]'")

LAYERS = 4
LOGIT_TOLERANCE = 1e-4  # fp32 on two kernel libraries: the same sums in a different order
runner = CliRunner()

SETTINGS = {  # per criterion, a setting that halts some words on the tiny models
    "entropy": {"threshold": 0.9}, "confidence": {"threshold": 0.5}, "patience": {"patience": 1},
    "rising": {"patience": 1}, "vote": {"threshold": 0.1}, "learned": {"threshold": 0.5}, "signals": {"threshold": 0.5},
}


@pytest.fixture(scope="module")
def model(make_tagger):
    """A 4-layer tiny tagger with temperatures and (random) learned and signals heads, so every criterion runs."""
    base = copy.deepcopy(make_tagger(LAYERS))
    base.exit_temperatures = [0.5, 1.0, 2.0, 1.5]
    torch.manual_seed(0)
    base.learned_exits = LearnedExitHeads(base.adapter.hidden_size, LAYERS).eval()
    base.halting_signals = HaltingSignals(len(base.labels), LAYERS).eval()
    return base


def outputs(model, sentences, policy, batch_size):
    run = run_policy(model, sentences, policy, batch_size=batch_size)
    return [(r.label_ids.tolist(), r.exit_layer.tolist()) for r in run.sentences], run


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("mode", ["tokee", "sentee"])
def test_onnx_fp32_gives_the_torch_labels_and_exit_layers(model, sentences, mode, criterion):
    onnx = apply_runtime(model, "onnx")
    policy = ExitPolicy(mode=mode, window=1, criterion=criterion, **SETTINGS[criterion])
    assert onnx.adapter.exit_graphs.spec(policy) is not None
    onnx.adapter.sessions = [None] * LAYERS  # the exit graph runs it: a layer-by-layer call would fail
    for batch_size in (1, 2, 32):
        want, torch_run = outputs(model, sentences, policy, batch_size)
        got, onnx_run = outputs(onnx, sentences, policy, batch_size)
        assert got == want, f"batch {batch_size}"
        assert [len(labels) for labels, _ in got] == [len(s) for s in sentences], "one label per word"
        assert onnx_run.flops.spent == torch_run.flops.spent
    halted = [layer for _, layers in want for layer in layers]
    assert min(halted) < LAYERS, "the setting halts words: halting is exercised"
    rows = {spec.single_row for spec, _ in onnx.adapter.exit_graphs.sessions}
    assert rows == {True, False}, "batch 1 ran the single-row graph, batches of more the packing one"


@pytest.mark.parametrize("criterion, patience", [("patience", 1), ("rising", 2)])
def test_counting_criteria_carry_their_counts_through_the_graph(model, sentences, criterion, patience):
    """The count of exits in a row is carried from exit to exit inside the graph: the first
    words halt at exit patience + 1, as on torch, never earlier; each patience is a graph of its own."""
    onnx = apply_runtime(model, "onnx")
    onnx.adapter.sessions = [None] * LAYERS
    policy = ExitPolicy.tokee(window=0, criterion=criterion, patience=patience)
    graphs = onnx.adapter.exit_graphs
    assert graphs.spec(policy) != graphs.spec(ExitPolicy.tokee(window=0, criterion=criterion, patience=patience + 1))
    for batch_size in (1, 32):
        want = outputs(model, sentences, policy, batch_size)[0]
        assert outputs(onnx, sentences, policy, batch_size)[0] == want
    assert min(layer for _, row in want for layer in row) == patience + 1


@pytest.mark.parametrize("policy", [ExitPolicy(), ExitPolicy.static(2)], ids=["full", "static"])
def test_onnx_fp32_full_and_static_logits_within_tolerance(model, sentences, policy):
    onnx = apply_runtime(model, "onnx")
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    depth = policy.exit_depth(LAYERS)
    with torch.inference_mode():
        want = model(batch, num_layers=depth, exits="all")
        got = onnx(batch, num_layers=depth, exits="all")
    mask = batch.word_mask
    assert (got[:, mask] - want[:, mask]).abs().max() <= LOGIT_TOLERANCE
    assert outputs(onnx, sentences, policy, 2)[0] == outputs(model, sentences, policy, 2)[0]


@pytest.mark.parametrize("in_graph", [True, False], ids=["embedded-in-graph", "torch-embeddings"])
def test_casing_features_reach_the_exit_graph(tiny_backbone, in_graph, monkeypatch):
    """BERT's embeddings are finished inside the exit graph (the caller passes word vectors)
    with the casing vectors; a family without plain embeddings passes torch's. Both give the
    torch engine's labels, and casing changes them."""
    from seqexit.model import MultiExitTagger
    from tests.conftest import EXIT_LABELS

    cased = MultiExitTagger.from_backbone(tiny_backbone, EXIT_LABELS, casing=True).eval()
    with torch.no_grad():
        cased.encoder.casing_embeddings.weight.normal_(0, 1.0)
        for head in cased.exits:
            head.linear.weight.mul_(8.0)
    onnx = apply_runtime(cased, "onnx")
    if not in_graph:
        monkeypatch.setattr(type(onnx.adapter.base), "embedding_parts", lambda self: None)
        onnx = apply_runtime(cased, "onnx")
    assert (onnx.adapter.exit_graphs.embedding is not None) == in_graph
    words = [["John", "Smith", "was", "in", "Paris", "."], ["john", "smith", "was", "in", "paris", "."]]
    for policy in (ExitPolicy(), ExitPolicy.tokee(0.5, window=1)):
        for batch_size in (1, 32):
            got, _ = outputs(onnx, words, policy, batch_size)
            want, _ = outputs(cased, words, policy, batch_size)
            assert got == want, (policy, batch_size)
    full = [labels for labels, _ in outputs(onnx, words, ExitPolicy(), 1)[0]]
    assert full[0] != full[1], "casing changes the labels of the same pieces"


def test_onnx_keeps_the_float_model_and_refuses_training(model, sentences):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    onnx = apply_runtime(model, "onnx", quantize="int8")
    assert onnx is not model and onnx.quantized == "int8" and model.quantized is None
    assert onnx.pieces is model.pieces, "the tokenizer is shared, not copied"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences[:1]) for c in chunks])
    states = torch.zeros(1, batch.input_ids.shape[1], model.adapter.hidden_size, requires_grad=True)
    with pytest.raises(RuntimeError, match="for inference; train with runtime='torch'"):
        onnx.adapter.run_layer(0, states, batch.attention_mask)


@pytest.mark.parametrize("policy", [ExitPolicy(), ExitPolicy.tokee(0.9, window=1)], ids=["full", "tokee"])
def test_onnx_int8_labels_do_not_depend_on_the_batch(model, sentences, policy):
    onnx = apply_runtime(model, "onnx", quantize="int8")
    alone = [outputs(onnx, [words], policy, 1)[0][0] for words in sentences]
    together, _ = outputs(onnx, sentences, policy, 32)
    reordered, _ = outputs(onnx, sentences[::-1], policy, 2)
    assert together == alone and reordered[::-1] == alone


def test_an_int8_product_quantises_each_row_alone_and_a_zero_row_gives_the_bias():
    """The int8 projection: each row on its own scale (a row's result is the same whatever
    rows come with it), close to the float product, and a row of zeros (scale 0) gives the
    bias exactly rather than NaN."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from seqexit.runtime.onnx_graph import OPSET, GraphBuilder, _projection

    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(32, 16)).astype(np.float32), rng.normal(size=16).astype(np.float32)
    g = GraphBuilder()
    g.nodes.append(helper.make_node("Identity", [_projection(g, "x", weight, bias, True, "p")], ["y"]))
    graph = helper.make_graph(g.nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], g.initializers)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=opsets).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = rng.normal(size=(5, 32)).astype(np.float32)
    x[1] = 0.0
    x[3] *= 1000.0  # a loud row does not coarsen the others
    out = session.run(None, {"x": x})[0]
    assert np.isfinite(out).all() and np.array_equal(out[1], bias)
    alone = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(5)])
    assert np.array_equal(out, alone)
    want = x @ weight + bias
    assert (np.abs(out - want).max(1) <= 0.05 * np.abs(want).max(1) + 1e-6).all()
    assert np.abs(out - want).max() > 0, "int8, not float"


def test_onnx_int8_stays_close_to_float(model, sentences):
    onnx = apply_runtime(model, "onnx", quantize="int8")
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    with torch.inference_mode():
        want, got = model(batch, exits="last")[0], onnx(batch, exits="last")[0]
    mask = batch.word_mask
    scale = want[mask].abs().max()
    assert 0 < (got[mask] - want[mask]).abs().max() <= 0.1 * scale, "int8 differs from fp32, but only a little"


def test_keep_float_projections_stay_fp32(model, sentences):
    everything = apply_runtime(model, "onnx", quantize="int8", keep_float=onnx_session.PROJECTIONS)
    want, _ = outputs(model, sentences, ExitPolicy(), 2)
    assert outputs(everything, sentences, ExitPolicy(), 2)[0] == want


# --- the graph cache ------------------------------------------------------------------------------


def count_builds(monkeypatch) -> list[str]:
    """Every graph built from here on: "layer" (one per layer) or "exits" (a whole exit loop)."""
    from seqexit.runtime import exit_graph, onnx_graph

    built = []
    for module, name, kind in ((onnx_graph, "layer_graph", "layer"), (exit_graph, "exit_graph", "exits")):
        def counting(*args, _real=getattr(module, name), _kind=kind, **kwargs):
            built.append(_kind)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return built


def test_graphs_are_built_once_then_read_from_the_cache(model, sentences, tmp_path, monkeypatch):
    built = count_builds(monkeypatch)
    files = lambda: len(list(tmp_path.glob("*.onnx")))  # noqa: E731
    first = apply_runtime(model, "onnx", cache_dir=tmp_path)
    assert built == ["layer"], "layer 1 at load (checked against torch), the others when first used"
    tokee = ExitPolicy.tokee(0.9, window=1)
    labels = outputs(first, sentences, tokee, 2)[0]
    graphs = 1 + len(sentences) % 2  # a last batch of one sentence runs the policy's single-row graph
    assert built == ["layer"] + ["exits"] * graphs, "the exit graph is built when a policy first needs it, no layer graph"
    run_exits(first, sentences)  # every exit read: layer by layer
    assert built.count("layer") == LAYERS and files() == LAYERS + graphs
    second = apply_runtime(model, "onnx", cache_dir=tmp_path)
    assert outputs(second, sentences, tokee, 2)[0] == labels
    run_exits(second, sentences)
    assert len(built) == LAYERS + graphs and files() == LAYERS + graphs, "the second load built nothing"
    outputs(second, sentences, ExitPolicy(), 2)
    assert built.count("exits") == graphs + 1, "another policy shape is another graph"
    run_exits(apply_runtime(model, "onnx", quantize="int8", cache_dir=tmp_path), sentences)
    assert built.count("layer") == 2 * LAYERS and files() == 2 * LAYERS + graphs + 1, "int8 is its own entry"


def test_changed_weights_make_new_graphs(model, sentences, tmp_path, monkeypatch):
    built = count_builds(monkeypatch)
    run_exits(apply_runtime(model, "onnx", cache_dir=tmp_path), sentences)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.adapter.layers[2].ffn_in.weight.add_(0.5)
    onnx = apply_runtime(changed, "onnx", cache_dir=tmp_path)
    run_exits(onnx, sentences)
    assert built == ["layer"] * (LAYERS + 1), "only the changed layer is rebuilt"
    assert outputs(onnx, sentences, ExitPolicy(), 2)[0] == outputs(changed, sentences, ExitPolicy(), 2)[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "digest", "empty"])
def test_a_damaged_cache_is_rebuilt_never_trusted(model, sentences, tmp_path, monkeypatch, damage):
    apply_runtime(model, "onnx", cache_dir=tmp_path)
    graph = sorted(tmp_path.glob("*.onnx"))[0]
    data = graph.read_bytes()
    if damage == "garbage":
        graph.write_bytes(b"\x08\x07not a graph" * 100)
    elif damage == "truncated":
        graph.write_bytes(data[: len(data) // 2])
    elif damage == "digest":  # a valid graph of other weights under this key: its digest no longer matches
        graph.with_suffix(".sha256").write_text("0" * 64)
    else:
        graph.write_bytes(b"")
    built = count_builds(monkeypatch)
    onnx = apply_runtime(model, "onnx", cache_dir=tmp_path)
    assert len(built) == 1, "exactly the damaged graph is rebuilt"
    assert graph.read_bytes() == data, "and written back whole"
    assert outputs(onnx, sentences, ExitPolicy(), 2)[0] == outputs(model, sentences, ExitPolicy(), 2)[0]


def test_an_unwritable_cache_is_skipped(model, sentences, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    onnx = apply_runtime(model, "onnx", cache_dir=blocked / "cache")
    assert outputs(onnx, sentences, ExitPolicy(), 2)[0] == outputs(model, sentences, ExitPolicy(), 2)[0]


# --- choosing the runtime -------------------------------------------------------------------------


def test_check_and_pick_runtime(model, monkeypatch):
    assert check_runtime(None) == "auto" and check_runtime("onnx") == "onnx"
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'; choose one of: auto, torch, onnx"):
        check_runtime("tensorrt")
    assert pick_runtime(model, "torch") == "torch" and pick_runtime(model, "onnx") == "onnx"
    assert pick_runtime(model, "auto", device="meta") == "torch", "off the CPU, auto is torch"
    with pytest.raises(ValueError, match="runs on the CPU only"):
        pick_runtime(model, "onnx", device="meta")
    monkeypatch.setenv("SEQEXIT_RUNTIME", "torch")
    assert pick_runtime(model, "auto") == "torch"
    monkeypatch.setenv("SEQEXIT_RUNTIME", "onnx")
    assert pick_runtime(model, "auto") == "onnx"


def test_auto_is_remembered_per_cpu(model, tmp_path, monkeypatch):
    from seqexit.runtime import select

    monkeypatch.setenv("SEQEXIT_CACHE", str(tmp_path))
    monkeypatch.delenv("SEQEXIT_RUNTIME", raising=False)
    select._measured_pick.cache_clear()
    picked = pick_runtime(model, "auto")
    assert picked in ("torch", "onnx")
    remembered = json.loads((tmp_path / "runtime_pick.json").read_text())
    assert list(remembered.values()) == [picked]
    select._measured_pick.cache_clear()
    monkeypatch.setattr(select, "_layer_seconds", lambda *a: pytest.fail("measured again"))
    assert pick_runtime(model, "auto") == picked
    select._measured_pick.cache_clear()


def test_an_activation_without_an_onnx_form_falls_back_or_is_refused(model):
    odd = copy.deepcopy(model)
    odd.encoder.config.hidden_act = "silu"
    with pytest.raises(ValueError, match="activation 'silu' has no ONNX form here.*use runtime 'torch'"):
        pick_runtime(odd, "onnx")
    assert pick_runtime(odd, "auto") == "torch"


# --- the switch through the library, the CLI and spaCy ----------------------------------------------


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "model"
    save_model(model, path)
    return path


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_tagger_load_runtime(folder, sentences, runtime):
    tagger = Tagger.load(folder, runtime=runtime, policy=ExitPolicy.tokee(0.9, window=1))
    assert type(tagger.model.adapter).__name__ == {"torch": "BertFamilyAdapter", "onnx": "OnnxAdapter"}[runtime]
    reference = Tagger.load(folder, runtime="torch", policy=ExitPolicy.tokee(0.9, window=1))
    assert [t.labels for t in tagger.tag(sentences)] == [t.labels for t in reference.tag(sentences)]
    assert (folder / ".cache").is_dir() or runtime == "torch", "graphs are kept in the model folder"


def test_cli_runtime_switch(folder, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("john smith was in berlin .\nmary said it .\n")
    out = {}
    for runtime in ("torch", "onnx", "auto"):
        result = runner.invoke(app, ["tag", str(text), "-m", str(folder), "--runtime", runtime, "-f", "jsonl"])
        assert result.exit_code == 0, result.output
        out[runtime] = result.stdout
    assert out["torch"] == out["onnx"] == out["auto"]
    result = runner.invoke(app, ["tag", str(text), "-m", str(folder), "--runtime", "tensorrt"])
    assert result.exit_code == 2 and "--runtime: unknown runtime 'tensorrt'; choose one of: auto, torch, onnx" in result.output


def test_cli_says_how_to_install_a_missing_runtime(folder, tmp_path, monkeypatch):
    from seqexit.runtime import select

    monkeypatch.setattr(select, "onnx_installed", lambda: False)
    text = tmp_path / "in.txt"
    text.write_text("john smith .\n")
    for command in (["tag", str(text), "-m", str(folder)], ["evaluate", str(folder), str(text)]):
        result = runner.invoke(app, [*command, "--runtime", "onnx"])
        assert result.exit_code == 2, result.output
        assert "pip install 'seqexit[onnx]'" in result.output


def test_spacy_config_runtime(folder, tmp_path):
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("seqexit_ner", config={"model": str(folder), "runtime": "onnx"})
    doc = nlp("john smith was in berlin .")
    assert type(pipe._runner.adapter).__name__ == "OnnxAdapter" and len(doc) == 6
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("seqexit_ner").runtime == "onnx"
    assert [t.ent_iob_ for t in loaded("john smith was in berlin .")] == [t.ent_iob_ for t in doc]
    with pytest.raises(ValueError, match="seqexit_ner: unknown runtime 'fast'"):
        spacy.blank("en").add_pipe("seqexit_ner", config={"model": str(folder), "runtime": "fast"})


def test_halted_pieces_are_not_computed(model, sentences):
    """Under TOKEE the per-layer ONNX graphs get queries for the running pieces only (keys and values for all)."""
    onnx = apply_runtime(model, "onnx")
    onnx.adapter.exit_graphs = None  # the layer-by-layer path
    fed = []
    for session in onnx.adapter.sessions:
        real = session.run

        def spy(names, feed, _real=real):
            fed.append((feed["query_index"].shape[1], feed["hidden"].shape[1]))
            return _real(names, feed)

        session.run = spy
    run_policy(onnx, sentences, ExitPolicy.tokee(0.9, window=0), batch_size=32)
    assert fed[0][0] == fed[0][1], "layer 1 runs every piece"
    assert any(queries < pieces for queries, pieces in fed[1:]), "later layers skip the halted pieces"


def test_the_exit_graph_computes_only_running_pieces(model, sentences, monkeypatch, tmp_path):
    """Inside the one-call exit graph too: ONNX Runtime's own profile shows the feed-forward
    products of layers 2+ taking fewer rows than layer 1's, and none at all once every word halted."""
    from seqexit.runtime import onnx_exits

    real_options = onnx_exits.session_options

    def profiled(threads=None, **kwargs):
        options = real_options(threads, **kwargs)
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / "profile")
        return options

    monkeypatch.setattr(onnx_exits, "session_options", profiled)
    onnx = apply_runtime(model, "onnx")
    policy = ExitPolicy.tokee(0.9, window=0)
    spec = onnx.adapter.exit_graphs.spec(policy)
    assert outputs(onnx, sentences, policy, 32)[0] == outputs(model, sentences, policy, 32)[0]
    events = json.loads(Path(onnx.adapter.exit_graphs.session(spec).end_profiling()).read_text())
    rows = [next(iter(event["args"]["output_type_shape"][0].values()))[0] for event in events
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and "Gelu" in event["args"]["op_name"]]
    rows = rows[LAYERS:]  # one activation per layer run; the first LAYERS are the load-time check's
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    assert rows[0] == batch.input_ids.numel(), "layer 1 runs every piece"
    assert 1 < len(rows) <= LAYERS and all(r < batch.attention_mask.sum() for r in rows[1:]), "later layers run fewer"


def test_a_layer_that_disagrees_with_torch_is_caught(model, monkeypatch):
    from seqexit.runtime import onnx_session, select

    real = onnx_session.check_against_torch

    def broken(adapter, session, quantize):
        real(adapter, session, quantize)  # passes on this onnxruntime ...
        raise onnx_session.RuntimeMismatch("layer differs")  # ... pretend one where a kernel does not

    monkeypatch.setattr(onnx_session, "check_against_torch", broken)
    with pytest.raises(onnx_session.RuntimeMismatch, match="layer differs"):
        apply_runtime(model, "onnx")
    monkeypatch.setattr(select, "pick_runtime", lambda *a, **k: "onnx")
    with pytest.warns(RuntimeWarning, match="layer differs; running on torch instead"):
        fallback = apply_runtime(model, "auto")
    assert fallback.runtime == "torch"


def test_cpu_name_gives_the_model_and_its_widest_vector_instructions(tmp_path):
    from seqexit.runtime.select import cpu_name

    def cpuinfo(flags: str) -> str:
        path = tmp_path / f"cpuinfo-{len(flags)}"
        path.write_text(f"processor\t: 0\nmodel name\t: AMD  EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\nmodel name\t: other\n")
        return str(path)

    assert cpu_name(cpuinfo("fpu sse avx2 fma")) == "AMD EPYC (AVX2)"
    assert cpu_name(cpuinfo("avx2 avx512f avx512_vnni avx512_bf16")) == "AMD EPYC (AVX512-BF16, AVX512-VNNI, AVX-512)"
    assert cpu_name(cpuinfo("sse")) == "AMD EPYC"
    assert cpu_name(str(tmp_path / "missing")) == ""


def test_the_int8_layer_check_passes_the_real_layer_and_refuses_one_off_by_a_third(model):
    """The load check compares int8 as a whole (relative L2): the layer as built passes; the
    same layer with its output scaled by 1.3 (a kernel that computes something else) does not."""
    sessions = onnx_session.layer_sessions(model.adapter, model.encoder.config.hidden_act, "int8")

    class OffByAThird:
        def run(self, names, feed):
            return [sessions[0].run(names, feed)[0] * 1.3]

    onnx_session.check_against_torch(model.adapter, sessions[0], "int8")
    with pytest.raises(onnx_session.RuntimeMismatch, match=r"by 0\.3\d* \(relative; allowed 0\.1, int8\)"):
        onnx_session.check_against_torch(model.adapter, OffByAThird(), "int8")
