from __future__ import annotations

import json

import pytest

from napari_sasvi.core.datasets import CADIS, CATARACT1K, CHOLECSEG8K, get_class_table
from napari_sasvi.core.errors import InputError


def test_presets_match_the_reference():
    assert len(CADIS) == 17 and CADIS.no_label == 255 and CADIS.dummy_id == 18
    assert CADIS.by_id(6).name == "Cornea" and CADIS.by_id(6).color == (255, 255, 255)
    assert len(CHOLECSEG8K) == 13 and CHOLECSEG8K.no_label == 0
    assert CHOLECSEG8K.source_values[31] == 5 and CHOLECSEG8K.by_id(5).name == "Grasper"
    assert len(CATARACT1K) == 14 and CATARACT1K.by_id(4).color == CATARACT1K.by_id(11).color
    assert get_class_table("Cataract-1K") is CATARACT1K


def test_user_tables_yaml_and_json(tmp_path):
    y = tmp_path / "mine.yaml"
    y.write_text(
        "no_label: 255\nignore_ids: [0]\nclasses:\n  - {id: 0, name: Bg, color: [0, 0, 0]}\n"
        "  - {id: 3, name: Tool, color: [10, 20, 30]}\n"
    )
    t = get_class_table(y)
    assert t.ids == [0, 3] and t.scored_ids() == [3] and t.name == "mine"
    j = tmp_path / "t.json"
    j.write_text(json.dumps([{"id": 1, "name": "a", "color": [1, 2, 3]}]))
    assert get_class_table(j).by_id(1).color == (1, 2, 3)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": [{"id": 1, "name": "a", "color": [1, 2, 300]}]}))
    with pytest.raises(InputError, match="colour"):
        get_class_table(bad)
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"classes": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}))
    with pytest.raises(InputError, match="twice"):
        get_class_table(dup)
    with pytest.raises(InputError, match="Unknown dataset"):
        get_class_table("endovis")


def test_evaluate_frames_cli(tmp_path, capsys):
    import csv

    import numpy as np
    from PIL import Image

    from napari_sasvi.cli import main

    gt = np.zeros((3, 10, 10), np.uint8)
    gt[:, :5] = 1
    pred = gt.copy()
    pred[2, :5] = 0  # class 1 missed entirely on the last frame
    for name, stack in (("gt", gt), ("pred", pred)):
        (tmp_path / name).mkdir()
        for t in range(3):
            Image.fromarray(stack[t]).save(tmp_path / name / f"{t:03d}.png")
    table = tmp_path / "c.yaml"
    table.write_text("ignore_ids: [0]\nclasses:\n  - {id: 0, name: bg}\n  - {id: 1, name: tool}\n")
    assert (
        main(
            [
                "evaluate",
                "frames",
                str(tmp_path / "pred"),
                str(tmp_path / "gt"),
                "--classes",
                str(table),
                "--csv",
                str(tmp_path / "o.csv"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    tool = next(r for r in rows if r["name"] == "tool")
    assert float(tool["dice"]) == 2 * 100 / (100 + 150)  # 100 px found of 150, none extra
    assert rows[-1]["name"] == "macro" and float(rows[-1]["dice"]) == float(tool["dice"])  # bg ignored
    assert "macro" in capsys.readouterr().out


def test_dataset_names_in_any_case_everywhere():
    from napari_sasvi.cli import build_parser
    from napari_sasvi.core.config import RunConfig
    from napari_sasvi.core.datasets import canonical_dataset

    for name in ("CholecSeg8k", "CHOLECSEG8K", "cholec-seg8k", "Cholec_Seg8k"):
        assert canonical_dataset(name) == "cholecseg8k"
        assert get_class_table(name) is CHOLECSEG8K
    assert RunConfig(dataset="CaDIS").class_table() is CADIS
    assert canonical_dataset("tables/mine.yaml") == "tables/mine.yaml"  # a file: unchanged
    parser = build_parser()
    # the spelling `train` accepts is one that `segment` and `evaluate` accept too
    assert parser.parse_args(["segment", "v", "--out", "o.zarr", "--dataset", "CholecSeg8k"]).dataset == "cholecseg8k"
    assert parser.parse_args(["evaluate", "frames", "p", "g", "--dataset", "CaDIS"]).dataset == "cadis"
    with pytest.raises(SystemExit):
        parser.parse_args(["segment", "v", "--out", "o.zarr", "--dataset", "endovis"])
