"""Exit policies and presets as JSON: round trips, the presets file, and its error messages."""

import json

import pytest

from seqexit.bundle import PRESETS_FILE, load_presets, resolve_preset, save_presets
from seqexit.exits import ExitPolicy, Preset

POLICIES = [
    ExitPolicy(),
    ExitPolicy.static(2),
    ExitPolicy.sentee(0.3, window=1),
    ExitPolicy.tokee(0.2, window=2, min_layer=2),
    ExitPolicy.tokee([0.5, 0.4, 0.0, 0.1], window=0),
]


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_policy_round_trips_through_json(policy):
    data = json.loads(json.dumps(policy.to_dict()))
    assert ExitPolicy.from_dict(data) == policy


def test_policy_from_dict_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown exit policy key.*'thresh'"):
        ExitPolicy.from_dict({"mode": "tokee", "thresh": 0.1})
    with pytest.raises(ValueError, match="window must be int"):
        ExitPolicy.from_dict({"mode": "tokee", "window": "2"})
    with pytest.raises(ValueError, match="threshold must be a number"):
        ExitPolicy.from_dict({"mode": "tokee", "threshold": ["high"]})
    with pytest.raises(ValueError, match="static_layer"):
        ExitPolicy.from_dict({"mode": "static"})
    assert ExitPolicy.from_dict({"mode": "sentee", "threshold": 1}) == ExitPolicy(mode="sentee", threshold=1.0)


def preset(name, policy, score=90.0, speedup=1.5):
    return Preset(name=name, policy=policy, metric="f1", score=score, full_score=91.0, flops_speedup=speedup,
                  mean_exit_layer=2.5, data="dev.conll", sentences=10, max_drop=1.0)


def test_preset_round_trip_and_drop():
    p = preset("balanced", POLICIES[-1])
    assert p.drop == pytest.approx(1.0)
    assert p.to_dict()["drop"] == pytest.approx(1.0)
    assert Preset.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_save_and_load_presets(tmp_path):
    presets = {p.name: p for p in (preset(f"p{i}", policy) for i, policy in enumerate(POLICIES))}
    path = save_presets(tmp_path, presets)
    assert path == tmp_path / PRESETS_FILE
    raw = json.loads(path.read_text())
    assert raw["format_version"] == 1 and list(raw["presets"]) == list(presets)
    assert load_presets(tmp_path) == presets
    assert [f.name for f in tmp_path.iterdir()] == [PRESETS_FILE], "no temporary file is left behind"
    save_presets(tmp_path, [presets["p0"]])
    assert list(load_presets(tmp_path)) == ["p0"], "saving replaces the file"
    assert resolve_preset(tmp_path, "p0") == POLICIES[0]


def test_no_presets_file_is_empty(tmp_path):
    assert load_presets(tmp_path) == {}
    with pytest.raises(ValueError, match="no presets.*run `seqexit calibrate"):
        resolve_preset(tmp_path, "fast")


def test_unknown_preset_lists_the_available_ones(tmp_path):
    save_presets(tmp_path, [preset("accurate", POLICIES[2]), preset("fast", POLICIES[3])])
    with pytest.raises(ValueError, match="unknown preset 'quick'.*available: accurate, fast"):
        resolve_preset(tmp_path, "quick")


def test_malformed_presets_file_is_named(tmp_path):
    path = tmp_path / PRESETS_FILE
    path.write_text('{"format_version": 1, "presets": {')
    with pytest.raises(ValueError, match=f"{path}: malformed presets file"):
        load_presets(tmp_path)
    path.write_text(json.dumps({"format_version": 1, "presets": {"fast": {"name": "fast"}}}))
    with pytest.raises(ValueError, match=f"{path}: malformed preset 'fast': preset is missing policy"):
        load_presets(tmp_path)
    entry = preset("fast", POLICIES[3]).to_dict()
    entry["policy"]["speed"] = 3
    path.write_text(json.dumps({"format_version": 1, "presets": {"fast": entry}}))
    with pytest.raises(ValueError, match="malformed preset 'fast'.*unknown exit policy key.*'speed'"):
        resolve_preset(tmp_path, "fast")
    path.write_text(json.dumps({"format_version": 99, "presets": {}}))
    with pytest.raises(ValueError, match="newer seqexit"):
        load_presets(tmp_path)


def test_preset_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="preset name"):
        preset("has space", POLICIES[0])
    with pytest.raises(ValueError, match="two presets are named 'a'"):
        save_presets(tmp_path, [preset("a", POLICIES[0]), preset("a", POLICIES[1])])


def int8_preset(name, policy, score=89.5):
    return Preset(name=name, policy=policy, metric="f1", score=score, full_score=91.0, flops_speedup=2.0,
                  mean_exit_layer=2.0, data="dev.conll", sentences=10, max_drop=1.0, quantize="int8")


def test_int8_presets_live_beside_the_float_ones(tmp_path):
    floats = {"fast": preset("fast", POLICIES[3])}
    int8 = {"fast": int8_preset("fast", POLICIES[4]), "accurate": int8_preset("accurate", POLICIES[0])}
    save_presets(tmp_path, floats)
    save_presets(tmp_path, int8, quantize="int8")
    raw = json.loads((tmp_path / PRESETS_FILE).read_text())
    assert list(raw["presets"]) == ["fast"] and list(raw["int8"]) == ["fast", "accurate"]
    assert load_presets(tmp_path) == floats and load_presets(tmp_path, quantize="int8") == int8
    assert resolve_preset(tmp_path, "fast") == POLICIES[3]
    assert resolve_preset(tmp_path, "fast", quantize="int8") == POLICIES[4]
    assert int8["fast"].drop == pytest.approx(1.5), "an int8 preset's drop is against float full depth"
    save_presets(tmp_path, [preset("balanced", POLICIES[1])])
    assert list(load_presets(tmp_path)) == ["balanced"], "saving one section replaces that section only"
    assert load_presets(tmp_path, quantize="int8") == int8
    with pytest.raises(ValueError, match="unknown int8 preset 'balanced'.*available: fast, accurate"):
        resolve_preset(tmp_path, "balanced", quantize="int8")
    with pytest.raises(ValueError, match="is for quantize=int8, not None"):
        save_presets(tmp_path, int8)


def test_int8_presets_missing_say_how_to_make_them(tmp_path):
    save_presets(tmp_path, {"fast": preset("fast", POLICIES[3])})
    with pytest.raises(ValueError, match="no int8 presets: run `seqexit calibrate .* DEV_FILE --quantize int8`"):
        resolve_preset(tmp_path, "fast", quantize="int8")
    raw = json.loads((tmp_path / PRESETS_FILE).read_text())
    raw["int8"] = {"fast": preset("fast", POLICIES[3]).to_dict()}  # a float preset filed under int8
    (tmp_path / PRESETS_FILE).write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="in section 'int8' is for quantize=None"):
        load_presets(tmp_path, quantize="int8")
