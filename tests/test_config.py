"""RunConfig owns every default and validates every option: flags given on the command line override
a --config file whatever their value; wrong values are one-line errors naming the dotted key; the
CLI, the widget's form and Python start from the same defaults."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from napari_sasvi._cli_segment import config_from_args
from napari_sasvi.cli import build_parser, main
from napari_sasvi.core.config import ExportConfig, OverseerConfig, PolicyConfig, RunConfig, TrackerConfig
from napari_sasvi.core.errors import InputError
from napari_sasvi.core.policy import PolicyParams

#: a config file whose every option below differs from the default
FILE = {
    "dataset": "cadis",
    "mode": "reference",
    "device": "cpu",
    "overseer": {"batch_size": 4},
    "tracker": {"kind": "sam2", "model": "sam2.1_hiera_tiny", "image_size": 512},
    "export": {"size": [128, 96]},
}


def _config(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["segment", "video", "--out", "o.zarr", *argv]))


@pytest.fixture
def run_yaml(tmp_path) -> Path:
    path = tmp_path / "run.yaml"
    RunConfig.from_dict(FILE).save(path)
    return path


# -- flags given override the file, even when they equal the default ------------------------------------
@pytest.mark.parametrize(
    ("flags", "key", "value"),
    [
        (["--mode", "default"], "mode", "default"),
        (["--batch-size", "8"], "overseer.batch_size", 8),
        (["--device", "auto"], "device", "auto"),
        (["--export-size", "299", "299"], "export.size", (299, 299)),
        (["--tracker", "flow"], "tracker.kind", "flow"),
    ],
)
def test_a_flag_equal_to_the_default_overrides_the_config_file(run_yaml, flags, key, value):
    def get(cfg, dotted):
        for part in dotted.split("."):
            cfg = getattr(cfg, part)
        return cfg

    from_file = _config("--config", str(run_yaml))
    assert get(from_file, key) != value  # the file says otherwise...
    assert get(RunConfig(), key) == value  # ...the flag's value is the default...
    overridden = _config("--config", str(run_yaml), *flags)
    assert get(overridden, key) == value  # ...and the flag wins
    if key != "tracker.kind":  # the rest is the file's (another tracker kind drops its SAM2 options: below)
        assert overridden == from_file.replace(**{key: value})


def test_flags_not_given_leave_the_file_alone(run_yaml):
    assert _config("--config", str(run_yaml)) == RunConfig.load(run_yaml) == RunConfig.from_dict(FILE)


def test_another_kind_drops_the_file_options_of_the_old_kind(run_yaml, tmp_path):
    cfg = _config("--config", str(run_yaml), "--tracker", "flow")
    assert cfg.tracker == TrackerConfig(kind="flow")  # no SAM2 model or image size left over
    replay = tmp_path / "replay.yaml"
    RunConfig(overseer=OverseerConfig(masks="masks/", score_threshold=0.3, batch_size=2)).save(replay)
    cfg = _config("--config", str(replay), "--overseer", "maskrcnn", "--overseer-checkpoint", "m.pth")
    assert cfg.overseer == OverseerConfig(kind="maskrcnn", checkpoint="m.pth", batch_size=2)  # batch size kept


def test_a_sam2_model_or_config_names_the_sam2_tracker():
    assert _config("--dataset", "synthetic", "--sam2-model", "sam2.1_hiera_tiny").tracker == TrackerConfig(
        kind="sam2", model="sam2.1_hiera_tiny"
    )
    assert _config("--dataset", "synthetic", "--sam2-config", "sam2.1_hiera_t").tracker.kind == "sam2"
    with pytest.raises(InputError, match="for --tracker sam2; the hf tracker"):
        _config("--dataset", "synthetic", "--tracker", "hf", "--sam2-model", "sam2.1_hiera_tiny")


# -- one line naming the key -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overseer": {"batch_size": "eight"}}, "overseer.batch_size: expected an integer, got 'eight'."),
        ({"overseer": {"batch_size": 0}}, "overseer.batch_size: must be 1 or more, got 0."),
        ({"overseer": {"batch_size": 2.5}}, "overseer.batch_size: expected an integer, got 2.5."),
        ({"tracker": {"image_size": "big"}}, "tracker.image_size: expected an integer, got 'big'."),
        ({"tracker": {"image_size": 300}}, "tracker.image_size: must be a positive multiple of 32, got 300."),
        ({"tracker": {"random_weights": "maybe"}}, "tracker.random_weights: expected true or false, got 'maybe'."),
        ({"tracker": {"kind": "sam3"}}, "tracker.kind 'sam3' is not one of sam2, flow, hf."),
        ({"device": "gpu"}, "device 'gpu' is not one of auto, cpu, cuda, mps."),
        ({"dataset": 3}, "dataset: expected a string, got 3."),
        ({"policy": {"buffer": 1}}, "policy.buffer: must be 2 or more, got 1."),
        ({"policy": {"overlap": 1.5}}, "policy.overlap: must be 1.0 or less, got 1.5."),
        ({"policy": {"lookahead": "ten"}}, "policy.lookahead: expected an integer, got 'ten'."),
        ({"export": {"size": [0, 299]}}, "export.size: must be 1 or more, got 0."),
        ({"export": {"size": [299]}}, "export.size: wrong number of values, got [299]."),
        ({"overseer": 3}, "overseer: expected a mapping of options, got 3."),
        (
            {"tracker": {"modle": "x"}},
            "tracker.modle: unknown option; tracker takes kind, model, config, checkpoint, random_weights, image_size.",
        ),  # fmt: skip
        (
            {"trackers": {}},
            "trackers: unknown option; a run config takes dataset, mode, device, overseer, tracker, policy, export, instances, identity.",
        ),  # fmt: skip
    ],
)
def test_wrong_values_are_one_line_errors_naming_the_key(options, message, tmp_path):
    with pytest.raises(InputError) as e:
        RunConfig.from_dict(options)
    assert str(e.value) == message
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(options))
    with pytest.raises(InputError) as e:
        RunConfig.load(path)
    assert str(e.value) == f"{path}: {message}"  # the file is named too


def test_every_way_to_make_a_config_is_validated():
    with pytest.raises(InputError, match=r"^overseer\.batch_size: must be 1 or more, got 0\.$"):
        OverseerConfig(batch_size=0)
    with pytest.raises(InputError, match=r"^overseer\.batch_size: must be 1 or more"):
        dataclasses.replace(RunConfig().overseer, batch_size=0)
    with pytest.raises(InputError, match=r"^tracker\.image_size: must be a positive multiple of 32"):
        RunConfig().replace(**{"tracker.image_size": 100})
    with pytest.raises(InputError, match=r"^export\.size: expected a list"):
        ExportConfig(size="big")
    with pytest.raises(InputError, match=r"^mode 'fast' is not one of default, reference"):
        RunConfig(mode="fast")


def test_cli_errors_name_the_flag_or_the_file(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    argv = ["segment", str(tmp_path / "v"), "--out", str(tmp_path / "o.zarr")]
    assert main([*argv, "--dataset", "synthetic", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err == "napari-sasvi segment: error: --batch-size: must be 1 or more, got 0.\n"
    assert main([*argv, "--dataset", "synthetic", "--image-size", "33"]) == 2
    assert "--image-size: must be a positive multiple of 32, got 33." in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: synthetic\noverseer: {batch_size: eight}\n")
    assert main([*argv, "--config", str(bad)]) == 2
    err = capsys.readouterr().err  # the file's own names, not the flags
    assert (
        err == f"napari-sasvi segment: error: --config: {bad}: overseer.batch_size: expected an integer, got 'eight'.\n"
    )
    bad.write_text("dataset: [synthetic\n")
    assert main([*argv, "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not valid YAML" in err and "line 2" in err and err.count("\n") == 1
    assert not (tmp_path / "o.zarr").exists()


# -- configs that loaded before still load ---------------------------------------------------------------
def test_existing_configs_load_unchanged(tmp_path):
    # what RunConfig.to_dict() wrote before the policy's defaults were recorded as numbers
    old = RunConfig().to_dict() | {
        "policy": {"lookahead": None, "persistence": None, "overlap": None, "buffer": None, "min_visible": None}
    }
    assert RunConfig.from_dict(old) == RunConfig()
    assert RunConfig.from_dict({"dataset": "cadis", "overseer": None, "tracker": {}}) == RunConfig(dataset="cadis")
    cfg = RunConfig(dataset="cadis", mode="reference", device="cuda:1").replace(
        overseer={"kind": "maskrcnn", "checkpoint": "cadis/maskrcnn", "score_threshold": 0.05},
        **{
            "tracker.kind": "sam2",
            "tracker.model": "sam2.1_hiera_tiny",
            "tracker.image_size": 512,
            "export.size": None,
        },
    )
    for name in ("run.yaml", "run.json"):
        assert RunConfig.load(cfg.save(tmp_path / name)) == cfg
    assert RunConfig.from_dict({"export": {"size": ["64", 32.0]}}).export.size == (64, 32)  # YAML strings, floats
    assert OverseerConfig(masks=tmp_path).masks == str(tmp_path)  # a Path is kept as its string (JSON)
    assert json.loads(json.dumps(RunConfig().replace(**{"overseer.masks": tmp_path}).to_dict()))
    assert hash(RunConfig()) == hash(RunConfig())  # the engine memoises models keyed by these


# -- one place for each default --------------------------------------------------------------------------
def test_the_cli_starts_from_runconfig_and_shows_its_defaults(capsys):
    assert _config("--dataset", "synthetic") == RunConfig(dataset="synthetic")
    assert RunConfig().tracker.kind == "flow"  # offline, no weights
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # the help, its line breaks undone
    policy = PolicyParams()
    for flag, default in (
        ("--tracker", "flow"),
        ("--overseer", "replay"),
        ("--mode", "default"),
        ("--device", "auto"),
        ("--batch-size", "8"),
        ("--export-size", "299 299"),
        ("--masks-encoding", "auto"),
        ("--lookahead", policy.lookahead),
        ("--persistence", policy.persistence),
        ("--overlap", policy.overlap),
        ("--buffer", policy.buffer),
        ("--min-visible", policy.min_visible),
    ):
        entry = re.search(rf"\s{flag} [^(]*(\([^)]*\)[^(]*)*?\(default: ([^)]*)\)", text)
        assert entry is not None and entry.group(2) == str(default), (flag, entry and entry.group(0))
    assert "(default: None)" not in text


def test_policy_defaults_and_ranges_are_the_policys():
    cfg, params = RunConfig().policy_params(), PolicyParams()
    assert cfg == params
    assert dataclasses.asdict(PolicyConfig()) == {f: getattr(params, f) for f in dataclasses.asdict(PolicyConfig())}
    # each bound the config refuses, PolicyParams refuses too, and the values just inside pass both
    for name, bad, good in (("lookahead", 0, 1), ("persistence", -1, 0), ("overlap", 0.0, 1.0), ("buffer", 1, 2)):
        with pytest.raises(InputError, match=f"policy.{name}"):
            PolicyConfig(**{name: bad})
        with pytest.raises(ValueError):
            PolicyParams(**{name: bad})
        assert PolicyConfig(**{name: good}) and PolicyParams(**{name: good})


@pytest.mark.gui
def test_the_widget_form_starts_from_runconfig(qtbot, tmp_path):
    from napari_sasvi._napari._form import REPLAY_FOLDER, SegmentForm

    form = SegmentForm(None)
    form._overseer.value = REPLAY_FOLDER  # the default replays a labels layer, and there is no viewer
    form._overseer_path.value = tmp_path
    form._dataset.value = "synthetic"  # no silent default: the user (or the inputs) names the classes
    cfg = form.run_config()
    assert cfg.overseer.masks == str(tmp_path) and cfg.tracker == TrackerConfig(kind="flow", model="dis")
    # everything else is RunConfig's default (flow's method None is dis)
    assert cfg.replace(**{"overseer.masks": None, "tracker.model": None}) == RunConfig()
