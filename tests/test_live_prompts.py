"""Live prompts (issue 28, item 5): between two frames of a running propagation, one object is
re-prompted, added or removed; the others go on as if nothing happened, no frame is computed or
encoded twice. SAM2 (the current predictor, random weights, 256 px input) and the transformers
trackers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sasvi.core.datasets import SYNTHETIC
from napari_sasvi.core.inputs.frames import open_frames
from napari_sasvi.core.synthetic import SyntheticVideo
from napari_sasvi.core.trackers.sam2 import MAX_COND, SAM2Tracker

N = 6  # frames
AT = 2  # the frame the live prompts are given at


@pytest.fixture(scope="module")
def clip():
    video = SyntheticVideo(n_frames=N, height=72, width=96, seed=2)
    frames, _ = video.arrays(noisy=True)
    labels = np.stack([video.labels(t) for t in range(N)])
    ids = [int(c) for c in np.unique(labels[0]) if c != SYNTHETIC.no_label][:3]
    assert len(ids) == 3
    return open_frames(frames, name="clip"), labels, ids


@pytest.fixture(scope="module", params=["batched", "plain"])
def sam2(request):
    """SAM2.1 tiny at 256 px, objects batched per frame or SAM2's own ``propagate_in_video``.
    SAM2's output post-processing (``non_overlap_masks``) lowers each pixel's losing objects, so a
    re-prompted object changes the others' *output* where it now wins, not their memory; it is
    off here so that the others' logits can be compared exactly."""
    tracker = SAM2Tracker(
        config="sam2.1_hiera_t", device="cpu", image_size=256, batch_objects=request.param == "batched"
    )
    tracker.predictor.non_overlap_masks = False
    return tracker


def run(tracker, clip, live=None):
    """Prompt every object at frame 0 and propagate to the end; ``live(tracker, t)`` is called
    while the propagation is suspended after each frame t. Returns {t: {obj: logits}}."""
    stack, labels, ids = clip
    tracker.bind(stack)
    for c in ids:
        tracker.add_mask(0, c, labels[0] == c)
    out = {}
    for t, logits in tracker.propagate(0):
        assert t not in out  # no frame is yielded twice
        out[t] = {k: v.copy() for k, v in logits.items()}
        if live is not None:
            live(tracker, t)
    assert sorted(out) == list(range(N))
    return out


def test_re_prompting_one_object_leaves_the_others_as_they_were(sam2, clip):
    _, labels, ids = clip
    base = run(sam2, clip)
    new = labels[0] == ids[2]  # object ids[0] told to follow another object's mask

    def reprompt(tr, t):
        if t == AT:
            tr.add_mask(t, ids[0], new)

    live = run(sam2, clip, reprompt)
    assert set(sam2.encodes.values()) == {1} and len(sam2.encodes) == N  # frame AT not encoded again
    for t in range(N):
        assert live[t].keys() == set(ids)
        for c in ids[1:]:
            np.testing.assert_array_equal(live[t][c], base[t][c])  # the others: bit for bit
        if t <= AT:
            np.testing.assert_array_equal(live[t][ids[0]], base[t][ids[0]])
        else:
            assert not np.array_equal(live[t][ids[0]], base[t][ids[0]])
    # the prompt is a conditioning frame of that object only, its output the new mask
    st = sam2.state
    idx = st["obj_id_to_idx"][ids[0]]
    assert sorted(st["output_dict_per_obj"][idx]["cond_frame_outputs"]) == [0, AT]
    assert AT not in st["output_dict_per_obj"][idx]["non_cond_frame_outputs"]
    for c in ids[1:]:
        assert sorted(st["output_dict_per_obj"][st["obj_id_to_idx"][c]]["cond_frame_outputs"]) == [0]
    kept = st["output_dict_per_obj"][idx]["cond_frame_outputs"][AT]
    assert kept["maskmem_features"] is not None  # encoded into memory before frame AT + 1
    low = kept["pred_masks"][0, 0].float().numpy() > 0  # (S/4, S/4) over the whole frame
    rows = ((np.arange(low.shape[0]) + 0.5) * new.shape[0] / low.shape[0]).astype(int)
    cols = ((np.arange(low.shape[1]) + 0.5) * new.shape[1] / low.shape[1]).astype(int)
    want = new[np.ix_(rows, cols)]
    assert (low & want).sum() / (low | want).sum() > 0.8


def test_removing_and_adding_objects_live(sam2, clip):
    _, labels, ids = clip
    base = run(sam2, clip)

    def change(tr, t):
        if t == AT:
            tr.remove_objects([ids[1]])
        if t == AT + 1:  # a new object joins at the frame just yielded
            tr.add_mask(t, 7, labels[t] == ids[1])

    live = run(sam2, clip, change)
    assert set(sam2.encodes.values()) == {1}
    for t in range(N):
        want = set(ids) if t <= AT else {ids[0], ids[2]} | ({7} if t > AT + 1 else set())
        assert live[t].keys() == want
        for c in (ids[0], ids[2]):
            np.testing.assert_array_equal(live[t][c], base[t][c])
    assert live[N - 1][7].shape == labels.shape[1:]


def test_every_object_removed_then_one_added(sam2, clip):
    _, labels, ids = clip

    def change(tr, t):
        if t == 1:
            tr.remove_objects(ids)
        if t == 3:
            tr.add_mask(t, ids[0], labels[t] == ids[0])

    live = run(sam2, clip, change)
    assert [sorted(live[t]) for t in range(N)] == [ids, ids, [], [], [ids[0]], [ids[0]]]
    # frames 2 and 3 had no object: nothing to compute; frame 3's features were computed for
    # the prompt, once
    assert sam2.encodes == {0: 1, 1: 1, 3: 1, 4: 1, 5: 1}


def test_conditioning_frames_per_object_stay_capped(sam2, clip):
    _, labels, ids = clip

    def every_frame(tr, t):
        tr.add_mask(t, ids[0], labels[t] == ids[0])

    run(sam2, clip, every_frame)
    assert set(sam2.encodes.values()) == {1}
    st = sam2.state
    per = st["output_dict_per_obj"]
    cond = sorted(per[st["obj_id_to_idx"][ids[0]]]["cond_frame_outputs"])
    assert MAX_COND == 2 and cond == [N - 2, N - 1]  # the newest two
    # the older prompts are forgotten; their outputs stay as memory frames until released
    assert sorted(st["mask_inputs_per_obj"][st["obj_id_to_idx"][ids[0]]]) == [N - 2, N - 1]
    assert all(len(d["cond_frame_outputs"]) <= MAX_COND for d in per.values())


def test_a_long_run_re_prompted_every_frame_stays_flat():
    """30 frames at 64 px, one object re-prompted on every frame: conditioning frames and the
    frames held in memory stop growing once SAM2's memory reach is filled."""
    video = SyntheticVideo(n_frames=30, height=48, width=64, seed=1)
    frames, _ = video.arrays(noisy=True)
    gt = np.stack([video.labels(t) for t in range(30)])
    c = int(np.unique(gt[0][gt[0] != SYNTHETIC.no_label])[0])
    tr = SAM2Tracker(config="sam2.1_hiera_t", device="cpu", image_size=64, max_cond=3, keep=4)
    tr.bind(open_frames(frames, name="long"))
    tr.add_mask(0, c, gt[0] == c)
    mem = []
    for t, _ in tr.propagate(0):
        tr.add_mask(t, c, gt[t] == c)
        mem.append(tr.memory_frames())
    assert set(tr.encodes.values()) == {1} and len(tr.encodes) == 30
    assert len(tr.state["output_dict_per_obj"][0]["cond_frame_outputs"]) == 3
    assert max(mem[10:]) == max(mem[5:10])  # flat: 3 conditioning + keep + 1 released behind


def test_prompts_at_another_frame_during_a_propagation_are_refused(sam2, clip, sam2_tracker):
    stack, labels, ids = clip
    sam2.bind(stack)
    sam2.add_mask(0, ids[0], labels[0] == ids[0])
    gen = sam2.propagate(0)
    next(gen)
    t, _ = next(gen)
    with pytest.raises(RuntimeError, match="live prompts go to the frame just yielded"):
        sam2.add_mask(t + 1, ids[1], labels[0] == ids[1])
    with pytest.raises(RuntimeError, match="frame just yielded"):
        sam2.add_points(t - 1, ids[1], np.array([[10, 10]]), np.array([1]))
    gen.close()
    sam2.add_mask(t + 1, ids[1], labels[0] == ids[1])  # not propagating: any frame
    # the legacy predictor (reference mode) takes no live prompts
    legacy = sam2_tracker(legacy=True)
    assert legacy.live_prompts is False and sam2.live_prompts is True
    legacy.bind(stack)
    legacy.add_mask(0, ids[0], labels[0] == ids[0])
    gen = legacy.propagate(0)
    t, _ = next(gen)
    with pytest.raises(RuntimeError, match="legacy"):
        legacy.add_mask(t, ids[1], labels[0] == ids[1])
    gen.close()


def test_consensus_run_with_sam2_encodes_every_frame_once(tmp_path, sam2_tracker):
    """The span engine's live path end to end: SAM2 (random weights, so it disagrees with the
    overseer all the time) in default mode with consensus re-prompts and fades classes live."""
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams

    video = SyntheticVideo(n_frames=16, height=48, width=64, seed=0)
    frames, _ = video.arrays(noisy=True)
    gt = np.stack([video.labels(t) for t in range(16)])
    tracker = sam2_tracker(legacy=False)
    summary = run_sasvi(
        frames, ReplayOverseer(gt, SYNTHETIC), tracker, str(tmp_path / "s.zarr"), SYNTHETIC, PolicyParams()
    )
    assert [e for e in summary.events if e["kind"] == "reprompt_class"]
    assert set(tracker.encodes.values()) == {1} and len(tracker.encodes) == 16
    per = tracker.state["output_dict_per_obj"].values()
    assert all(len(d["cond_frame_outputs"]) <= MAX_COND for d in per)


# -- transformers trackers ---------------------------------------------------------------------------


@pytest.fixture(params=["sam2", "edgetam", "sam3"])
def hf(request, hf_tracker, monkeypatch):
    """A transformers tracker (random weights) whose image encoder counts its runs."""
    tracker, _ = hf_tracker(request.param)
    runs = []
    encode = tracker.model.get_image_features

    def counted(*args, **kwargs):
        runs.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(tracker.model, "get_image_features", counted)
    tracker.image_runs = runs
    return tracker


def _hf_memory(tr, obj: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """An object's stored object pointer and memory features at frame t."""
    s = tr.session
    per = s.output_dict_per_obj[s._obj_id_to_idx[obj]]
    out = per["cond_frame_outputs"].get(t) or per["non_cond_frame_outputs"][t]
    return out["object_pointer"].float().numpy().copy(), out["maskmem_features"].float().numpy().copy()


def test_hf_re_prompt_remove_and_add_live(hf, clip):
    _, labels, ids = clip
    assert hf.live_prompts is True
    seen: dict[str, dict] = {"base": {}, "live": {}}

    def record(tr, t, key):
        for o in tr.session.obj_ids:
            seen[key][t, o] = _hf_memory(tr, o, t)

    base = run(hf, clip, lambda tr, t: record(tr, t, "base"))
    hf.image_runs.clear()
    new = labels[0] == ids[2]

    def change(tr, t):
        record(tr, t, "live")
        if t == AT:
            tr.add_mask(t, ids[0], new)
        if t == AT + 1:
            tr.remove_objects([ids[1]])
            tr.add_mask(t, 7, labels[t] == ids[1])

    live = run(hf, clip, change)
    assert len(hf.image_runs) == N and set(hf.encodes.values()) == {1}  # no frame encoded twice
    for t in range(N):
        want = set(ids) if t <= AT + 1 else {ids[0], ids[2], 7}
        assert live[t].keys() == want
        untouched = [ids[2]] + ([ids[1]] if t <= AT + 1 else []) + ([ids[0]] if t <= AT else [])
        for o in untouched:  # outputs and memory as without the live prompts, bit for bit
            np.testing.assert_array_equal(live[t][o], base[t][o])
            for a, b in zip(seen["live"][t, o], seen["base"][t, o], strict=True):
                np.testing.assert_array_equal(a, b)
    # the re-prompted object's memory from frame AT on is its new mask (with random weights every
    # object's later output is "no object", so its logits cannot show it)
    s = hf.session
    cond = s.output_dict_per_obj[s._obj_id_to_idx[ids[0]]]["cond_frame_outputs"]
    assert sorted(cond) == [0, AT]
    assert not np.array_equal(cond[AT]["maskmem_features"].float().numpy(), seen["base"][AT, ids[0]][1])
    low = cond[AT]["pred_masks"][0, 0].float().numpy() > 0
    rows = ((np.arange(low.shape[0]) + 0.5) * new.shape[0] / low.shape[0]).astype(int)
    cols = ((np.arange(low.shape[1]) + 0.5) * new.shape[1] / low.shape[1]).astype(int)
    assert (low & new[np.ix_(rows, cols)]).sum() / (low | new[np.ix_(rows, cols)]).sum() > 0.8
    assert sorted(s.output_dict_per_obj[s._obj_id_to_idx[7]]["cond_frame_outputs"]) == [AT + 1]


def test_hf_conditioning_frames_capped_and_other_frames_refused(hf, clip):
    _, labels, ids = clip

    def every_frame(tr, t):
        tr.add_mask(t, ids[0], labels[t] == ids[0])
        with pytest.raises(RuntimeError, match="frame just yielded"):
            tr.add_mask(t + 1, ids[1], labels[t] == ids[1])

    run(hf, clip, every_frame)
    assert set(hf.encodes.values()) == {1}
    s = hf.session
    per = s.output_dict_per_obj[s._obj_id_to_idx[ids[0]]]
    assert sorted(per["cond_frame_outputs"]) == [N - 2, N - 1]
    assert sorted(s.mask_inputs_per_obj[s._obj_id_to_idx[ids[0]]]) == [N - 2, N - 1]
