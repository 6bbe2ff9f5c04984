"""Exit policies and presets as JSON: round trips, the presets file, and its error messages."""

import json

import pytest

from seqexit.exits import PRESETS_FILE, ExitPolicy, Preset, load_presets, resolve_preset, save_presets

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
