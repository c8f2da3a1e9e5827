"""Identity metrics of instance tracks (core/metrics/identity.py, track_temporal.py, hota.py) on
hand-built cases whose numbers are worked out in each test, and ``evaluate tracks`` end to end."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from napari_sasvi.core.errors import InputError
from napari_sasvi.core.instances.types import Instance
from napari_sasvi.core.metrics.hota import MISSING, HotaFrame, hota_scores
from napari_sasvi.core.metrics.identity import frame_overlap, iter_track_metrics, match_frame, track_metrics

H, W = 8, 8


def band(r0: int, r1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0:r1] = True
    return m


TOP, BOTTOM = band(0, 4), band(4, 8)


def paint(*pairs: tuple[np.ndarray, int]) -> np.ndarray:
    out = np.zeros((H, W), np.uint16)
    for mask, tid in pairs:
        out[mask] = tid
    return out


def gt(*pairs: tuple[np.ndarray, int], cls: int = 3) -> list[Instance]:
    return [Instance(cls, mask, source_id=sid) for mask, sid in pairs]


def test_perfect_prediction_scores_one_and_no_switch():
    maps = [paint((TOP, 1), (BOTTOM, 2))] * 3
    truth = [gt((TOP, 10), (BOTTOM, 11))] * 3
    r = track_metrics(maps, truth, {1: 3, 2: 3})
    o = r.overall
    assert (o.tp, o.fp, o.fn, o.idsw, o.n_gt) == (6, 0, 0, 0, 6)
    assert o.idf1 == o.idp == o.idr == 1.0 and o.motsa == 1.0 and o.mean_iou == 1.0
    assert [c.class_id for c in r.per_class] == [3] and r.per_class[0].idf1 == 1.0
    assert [(t.id, t.length, t.pairs, t.t_iou) for t in r.tracks] == [(1, 3, 2, 1.0), (2, 3, 2, 1.0)]
    assert r.t_iou_macro == 1.0 and (r.n_frames, r.n_scored) == (3, 3)


def test_ids_swapped_halfway():
    # objects A (top) and B (bottom) on 4 frames; tracks 1/2 follow A/B on frames 0-1, B/A on 2-3.
    # CLEAR: every detection matches (TP 8); at frame 2 A is matched to 2 (last to 1) and B to 1
    # (last to 2): 2 switches, none after. MOTSA = (8 - 0 - 2) / 8 = 0.75.
    # IDF1: frames matched A-1 2, A-2 2, B-1 2, B-2 2; the best one-to-one assignment (A-1, B-2)
    # keeps 4 of 8 ground-truth and of 8 predicted detections: IDF1 = 2 * 4 / (8 + 8) = 0.5.
    # T-IoU per track: pairs (0,1) 1, (1,2) 0 (top -> bottom), (2,3) 1: 2/3.
    maps = [paint((TOP, 1), (BOTTOM, 2))] * 2 + [paint((TOP, 2), (BOTTOM, 1))] * 2
    truth = [gt((TOP, 10), (BOTTOM, 11))] * 4
    o = track_metrics(maps, truth, {1: 3, 2: 3}).overall
    assert (o.tp, o.fp, o.fn, o.idsw) == (8, 0, 0, 2)
    assert o.motsa == 0.75 and o.idf1 == 0.5 and (o.idtp, o.n_gt, o.n_pred) == (4, 8, 8)
    r = track_metrics(maps, truth, {1: 3, 2: 3})
    assert [t.t_iou for t in r.tracks] == pytest.approx([2 / 3, 2 / 3])


def test_missed_object_is_a_false_negative():
    # B is never predicted: TP 3 (A), FN 3; IDTP 3 of GT 6 and pred 3: IDR 0.5, IDP 1,
    # IDF1 = 6 / 9; MOTSA = 3 / 6.
    maps = [paint((TOP, 1))] * 3
    truth = [gt((TOP, 10), (BOTTOM, 11))] * 3
    o = track_metrics(maps, truth, {1: 3}).overall
    assert (o.tp, o.fp, o.fn, o.idsw) == (3, 0, 3, 0)
    assert (o.idr, o.idp, o.motsa) == (0.5, 1.0, 0.5) and o.idf1 == pytest.approx(6 / 9)
    assert (o.gt_objects, o.pred_tracks) == (2, 1)


def test_sparse_ground_truth_skips_frames_and_a_switch_spans_the_gap():
    # frames 1 and 2 have no annotation: track 7 there is no FP. A is matched to 1 on frame 0 and
    # to 2 on frame 3 (its last match was 1): one switch. IDF1 = 2 * 1 / (2 + 2).
    maps = [paint((TOP, 1)), paint((TOP, 7)), paint((BOTTOM, 7)), paint((TOP, 2))]
    truth = [gt((TOP, 10)), None, None, gt((TOP, 10))]
    r = track_metrics(maps, truth, {1: 3, 2: 3, 7: 3})
    o = r.overall
    assert (r.n_frames, r.n_scored) == (4, 2)
    assert (o.tp, o.fp, o.fn, o.idsw, o.n_pred) == (2, 0, 0, 1, 2) and o.idf1 == 0.5
    # T-IoU still sees every frame: track 7 has frames 1 and 2 (IoU 0), tracks 1 and 2 no pair
    assert [(t.id, t.pairs, t.t_iou) for t in r.tracks] == [(1, 0, None), (2, 0, None), (7, 1, 0.0)]
    assert r.t_iou_macro == 0.0


def test_missed_frame_between_matches_is_no_switch_when_the_track_returns():
    # A -> 1, missed (FN), A -> 1 again: no switch; A -> 1, missed, A -> 2: one switch
    back = track_metrics([paint((TOP, 1)), paint(), paint((TOP, 1))], [gt((TOP, 10))] * 3, {1: 3}).overall
    other = track_metrics([paint((TOP, 1)), paint(), paint((TOP, 2))], [gt((TOP, 10))] * 3, {1: 3, 2: 3}).overall
    assert (back.tp, back.fn, back.idsw) == (2, 1, 0)
    assert (other.tp, other.fn, other.idsw) == (2, 1, 1)


def test_class_mismatch_matches_only_when_classes_are_ignored():
    maps = [paint((TOP, 1))] * 2
    truth = [gt((TOP, 10), cls=3)] * 2
    r = track_metrics(maps, truth, {1: 2})  # the track says class 2, the object is class 3
    assert (r.overall.tp, r.overall.fp, r.overall.fn) == (0, 2, 2) and r.class_aware
    rows = {c.class_id: c for c in r.per_class}
    assert (rows[2].fp, rows[2].n_gt, rows[3].fn, rows[3].n_pred) == (2, 0, 2, 0)
    assert rows[3].idf1 == 0.0 and rows[3].motsa == 0.0 and rows[2].motsa is None
    loose = track_metrics(maps, truth, {1: 2}, ignore_class=True)
    assert (loose.overall.tp, loose.overall.fp, loose.overall.idf1) == (2, 0, 1.0)
    assert loose.per_class == () and not loose.class_aware
    unknown = track_metrics(maps, truth, None)  # a folder of track-id PNGs: classes unknown
    assert unknown.overall.tp == 2 and not unknown.class_aware


def test_iou_threshold_and_the_tie_at_one_half():
    g = np.zeros((H, W), bool)
    g[0, :4] = True  # 4 pixels
    at_half = paint((band(0, 1), 1))  # 8 pixels holding the 4: IoU 0.5, a match
    below = at_half.copy()
    below[1, 0] = 1  # 9 pixels: IoU 4/9, no match
    assert track_metrics([at_half], [gt((g, 10))], {1: 3}).overall.tp == 1
    assert track_metrics([below], [gt((g, 10))], {1: 3}).overall.tp == 0
    # one track exactly covering two objects of half its size each: IoU 0.5 with both, one match
    r = track_metrics([paint((band(0, 2), 1))], [gt((band(0, 1), 10), (band(1, 2), 11))], {1: 3}).overall
    assert (r.tp, r.fn, r.fp) == (1, 1, 0)


def test_frame_overlap_and_hungarian_match():
    ov = frame_overlap(paint((TOP, 5), (BOTTOM, 9)), gt((band(0, 2), 1), (band(2, 6), 2)))
    assert ov.pred_ids.tolist() == [5, 9] and ov.pred_area.tolist() == [32, 32] and ov.gt_area.tolist() == [16, 32]
    assert ov.inter.tolist() == [[16, 0], [16, 16]]
    iou = ov.iou()
    assert iou[0, 0] == 0.5 and iou[1, 0] == pytest.approx(16 / 48)
    rows, cols, ok = match_frame(iou)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0)] and ok.sum() == 1


def test_two_classes_split_per_class_identity():
    # class 3: A perfect on 2 frames; class 4: C, its track switches from 5 to 6 on frame 1
    maps = [paint((TOP, 1), (BOTTOM, 5)), paint((TOP, 1), (BOTTOM, 6))]
    truth = [[Instance(3, TOP, source_id=1), Instance(4, BOTTOM, source_id=1)]] * 2  # ids per class
    r = track_metrics(maps, truth, {1: 3, 5: 4, 6: 4})
    rows = {c.class_id: c for c in r.per_class}
    assert (rows[3].idsw, rows[3].idf1, rows[3].gt_objects) == (0, 1.0, 1)
    assert (rows[4].idsw, rows[4].idf1, rows[4].pred_tracks) == (1, 0.5, 2)
    # overall: IDTP 2 + 1 of 4 and 4: 0.75; a row per class adds up to the overall counts
    assert r.overall.idf1 == 0.75 and r.overall.idsw == 1 and r.overall.gt_objects == 2
    d = r.to_dict()
    assert d["overall"]["idfn"] == 1 and d["per_class"][1]["class_id"] == 4 and d["tracks"][0]["id"] == 1


def test_streams_generators_and_yields_every_frame():
    seen = []

    def maps():
        for t in range(5):
            seen.append(t)
            yield paint((TOP, 1))

    gen = iter_track_metrics(maps(), (gt((TOP, 10)) if t % 2 == 0 else None for t in range(5)), {1: 3})
    assert list(gen) == [0, 1, 2, 3, 4] and seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("maps", "truth", "message"),
    [
        ([paint((TOP, 1))], [[Instance(3, TOP)]], "no id"),
        ([paint((TOP, 1))], [gt((TOP, 10), (BOTTOM, 10))], "Two ground-truth objects on frame 0"),
        ([paint((TOP, 1))], [[Instance(3, np.ones((4, 4), bool), source_id=1)]], "pixels"),
        ([paint((TOP, 1))] * 2, [gt((TOP, 10))], "different frame counts"),
        ([np.zeros((H, W), np.float32)], [None], "integers"),
        ([np.full((H, W), 70000, np.int32)], [None], "0..65535"),
    ],
)
def test_bad_input_is_one_clear_error(maps, truth, message):
    with pytest.raises(InputError, match=message):
        track_metrics(maps, truth, {1: 3})


def test_hota_says_what_to_install_when_trackeval_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackeval", None)
    monkeypatch.setitem(sys.modules, "trackeval.metrics", None)
    gen = iter_track_metrics([paint((TOP, 1))], [gt((TOP, 10))], {1: 3}, hota=True)
    with pytest.raises(InputError, match="pip install --no-deps trackeval") as e:
        next(gen)  # before any frame is read
    assert str(e.value) == MISSING


def test_hota_of_the_swap_against_a_hand_computation():
    pytest.importorskip("trackeval.metrics")
    # every detection matches with IoU 1 at every alpha: DetA = 1, LocA = 1. Association: each
    # of the 4 (object, track) pairs matches on 2 frames, each object and track has 4 detections:
    # A(c) = 2 / (4 + 4 - 2) = 1/3 for every TP, so AssA = 1/3 and HOTA = sqrt(1/3).
    maps = [paint((TOP, 1), (BOTTOM, 2))] * 2 + [paint((TOP, 2), (BOTTOM, 1))] * 2
    truth = [gt((TOP, 10), (BOTTOM, 11))] * 4
    r = track_metrics(maps, truth, {1: 3, 2: 3}, hota=True)
    h = r.overall.hota
    assert (h.det_a, h.loc_a) == pytest.approx((1.0, 1.0)) and h.ass_a == pytest.approx(1 / 3)
    assert h.hota == pytest.approx(np.sqrt(1 / 3)) and r.per_class[0].hota.hota == pytest.approx(h.hota)
    # no prediction at all: HOTA 0 (TrackEval's early exit)
    empty = hota_scores(
        [HotaFrame(np.array([0]), np.zeros(0, np.int64), np.zeros((1, 0)), np.array([3]), np.zeros(0))], False
    )
    assert empty[None].hota == 0.0


# -- evaluate tracks, end to end ---------------------------------------------------------------------
N, SH, SW = 6, 24, 32
GRASPER, CLIPPER, LIVER = 5, 7, 2


def scene(t: int, ids=(1, 2, 3, 4)) -> np.ndarray:
    """Two graspers (ids[0], ids[1]) crossing, a clipper ids[2] on frames 0-2, another ids[3] after."""
    tm = np.zeros((SH, SW), np.uint16)
    tm[4:11, 2 + 4 * t : 10 + 4 * t] = ids[0]
    tm[6:13, 22 - 4 * t : 30 - 4 * t] = ids[1]
    tm[16:21, 2:8] = ids[2] if t <= 2 else 0
    tm[16:21, 20:28] = ids[3] if t > 2 else 0
    return tm


def predicted(t: int) -> np.ndarray:
    """The scene as tracked, with the graspers' ids swapped from frame 3 on."""
    return scene(t, (1, 2, 3, 4) if t < 3 else (2, 1, 3, 4))


def make_track_store(path, instances=True):
    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.instances.types import TrackInfo
    from napari_sasvi.core.store.sasvi_store import SasviStore
    from napari_sasvi.core.store.tracks import class_lut

    cls = {1: GRASPER, 2: GRASPER, 3: CLIPPER, 4: CLIPPER}
    store = SasviStore.open(
        path, n_frames=N, frame_size=(SH, SW), classes=SYNTHETIC, signature={"t": str(path)}, instances=instances
    )
    table: dict = {}
    for t in range(N):
        tm = predicted(t)
        for k in np.unique(tm[tm > 0]).tolist():
            first = table[k].first if k in table else t
            table[k] = TrackInfo(k, cls[k], first, t)
        labels = class_lut(table, LIVER)[tm]
        store.write_frame(t, labels, labels.copy(), [], tracks=(tm, dict(table)) if instances else None)
    return path


def write_instance_pngs(folder, frames, ids=(11, 12, 13, 14), classes=None):
    from PIL import Image

    folder.mkdir(parents=True)
    for t in frames:
        Image.fromarray(scene(t, ids).astype(np.uint8)).save(folder / f"{t:05d}.png")
    classes = classes or dict(zip(ids, (GRASPER, GRASPER, CLIPPER, CLIPPER), strict=True))
    (folder / "instances.json").write_text(json.dumps({"classes": {str(k): v for k, v in classes.items()}}))
    return folder


def test_cli_evaluate_tracks_on_a_store(tmp_path, capsys):
    from napari_sasvi.cli import main

    store = make_track_store(tmp_path / "run.zarr")
    gt_dir = write_instance_pngs(tmp_path / "gt", range(N))
    out = tmp_path / "tracks.json"
    assert main(["evaluate", "tracks", str(store), str(gt_dir), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    d = json.loads(out.read_text())
    # 3 objects a frame x 6 frames, all matched (IoU 1); the graspers' ids swap at frame 3: 2
    # switches. IDF1: each grasper keeps its best track on 3 of 6 frames, each clipper its track
    # on its 3 frames: IDTP 3 + 3 + 3 + 3 = 12 of 18: 2/3; graspers 6 of 12: 0.5; clippers 1.
    o = d["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["idsw"]) == (18, 0, 0, 2)
    assert o["idf1"] == pytest.approx(2 / 3) and o["motsa"] == pytest.approx(16 / 18) and o["mean_iou"] == 1.0
    rows = {r["class_id"]: r for r in d["per_class"]}
    assert (rows[GRASPER]["idsw"], rows[GRASPER]["idf1"]) == (2, 0.5) and rows[CLIPPER]["idf1"] == 1.0
    assert d["class_aware"] and (d["n_frames"], d["n_scored"]) == (6, 6) and d["classes"][str(GRASPER)]
    # per-track T-IoU: a grasper's box moves 4 px of 8 a frame (IoU 4/12 = 1/3) except at the swap
    tracks = {r["id"]: r for r in d["tracks"]}
    assert tracks[3]["t_iou"] == 1.0 and tracks[3]["length"] == 3
    assert "overall" in text and "IDSW" in text and "T-IoU" in text and "add --hota" in text


def test_cli_evaluate_tracks_sparse_gt_every_and_class_rules(tmp_path, capsys):
    from napari_sasvi.cli import main

    store = make_track_store(tmp_path / "run.zarr")
    sparse = write_instance_pngs(tmp_path / "sparse", (0, 2, 4))  # frames 1, 3, 5 not annotated
    full = write_instance_pngs(tmp_path / "full", range(N))
    runs = {}
    for name, argv in {
        "sparse": [str(store), str(sparse)],
        "every": [str(store), str(full), "--every", "2"],
    }.items():
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", "tracks", *argv, "--json", str(out)]) == 0
        runs[name] = json.loads(out.read_text())
    for d in runs.values():
        o = d["overall"]
        # frames 0, 2, 4: 2 graspers + 1 clipper each, the switch shows at frame 4
        assert d["n_scored"] == 3 and (o["tp"], o["fn"], o["fp"], o["idsw"]) == (9, 0, 0, 2)
    assert runs["sparse"]["tracks"] == runs["every"]["tracks"]  # T-IoU sees every frame either way
    # the ground truth calls the clippers graspers: class-aware they are missed, not with --ignore-class
    wrong = write_instance_pngs(tmp_path / "wrong", range(N), classes={11: 5, 12: 5, 13: 5, 14: 5})
    out = tmp_path / "wrong.json"
    assert main(["evaluate", "tracks", str(store), str(wrong), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["overall"]["fn"] == 6
    assert main(["evaluate", "tracks", str(store), str(wrong), "--ignore-class", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["overall"]["fn"] == 0 and d["per_class"] == [] and not d["class_aware"]
    capsys.readouterr()


def test_cli_evaluate_tracks_png_folder_prediction(tmp_path, capsys):
    from PIL import Image

    from napari_sasvi.cli import main

    pred = tmp_path / "pred"
    pred.mkdir()
    for t in range(N):
        Image.fromarray(predicted(t)).save(pred / f"{t:05d}.png")  # 16-bit grey
    assert Image.open(pred / "00000.png").mode.startswith("I")
    gt_dir = write_instance_pngs(tmp_path / "gt", range(N))
    out = tmp_path / "o.json"
    assert main(["evaluate", "tracks", str(pred), str(gt_dir), "--json", str(out)]) == 2  # class ids, no table
    assert "class table" in capsys.readouterr().err
    assert main(["evaluate", "tracks", str(pred), str(gt_dir), "--dataset", "synthetic", "--json", str(out)]) == 0
    text = capsys.readouterr().out + capsys.readouterr().err
    d = json.loads(out.read_text())
    assert not d["class_aware"] and d["per_class"] == [] and d["overall"]["idsw"] == 2
    assert "classes unknown" in text or not d["class_aware"]
    # with the classes beside them (as export --ids track writes), by name or id
    (pred / "instances.json").write_text(json.dumps({"classes": {"1": GRASPER, "2": GRASPER, "3": 7, "4": 7}}))
    assert main(["evaluate", "tracks", str(pred), str(gt_dir), "--dataset", "synthetic", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["class_aware"] and {r["class_id"] for r in d["per_class"]} == {GRASPER, CLIPPER}


def test_cli_evaluate_tracks_refuses_what_it_cannot_score(tmp_path, capsys, monkeypatch):
    from napari_sasvi.cli import main

    plain = make_track_store(tmp_path / "plain.zarr", instances=False)
    gt_dir = write_instance_pngs(tmp_path / "gt", range(N))
    assert main(["evaluate", "tracks", str(plain), str(gt_dir)]) == 2
    err = capsys.readouterr().err
    assert "class-only store" in err and "--instances" in err and "Traceback" not in err
    store = make_track_store(tmp_path / "run.zarr")
    monkeypatch.setitem(sys.modules, "trackeval", None)
    monkeypatch.setitem(sys.modules, "trackeval.metrics", None)
    assert main(["evaluate", "tracks", str(store), str(gt_dir), "--hota"]) == 2
    assert "pip install --no-deps trackeval" in capsys.readouterr().err
    assert main(["evaluate", "tracks", str(store), str(gt_dir), "--every", "0"]) == 2
    assert "--every" in capsys.readouterr().err
