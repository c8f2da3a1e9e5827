"""``napari-sasvi edit``: corrections and pinned/skipped re-prompts of a finished store, headless
(the same edits as the widget's Re-propagate; :mod:`napari_sasvi.core.edits`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._cli_segment import add_encoding_option


def add_edit(sub) -> None:
    p = sub.add_parser(
        "edit",
        help="correct a frame of a store, pin or skip a re-prompt (only the span it affects is recomputed), undo",
        description="Edit a SASVi store. A correction writes your labels at FRAME and propagates them to the "
        "next re-prompt; --pin re-prompts from the overseer's labels at FRAME; --skip continues the segment "
        "before a re-prompt of the run through it; --prompts replays a prompt file (clicks, boxes) and --export-prompts "
        "writes one. Every edit can be undone (--undo, the last one first).",
    )
    p.add_argument("store", type=Path, help="a store written by napari-sasvi segment")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--correct", type=int, metavar="FRAME", help="correct frame FRAME with --labels")
    what.add_argument("--pin", type=int, metavar="FRAME", help="re-prompt at FRAME from the overseer's labels there")
    what.add_argument("--skip", type=int, metavar="FRAME", help="skip the run's re-prompt at FRAME")
    what.add_argument("--undo", action="store_true", help="undo the last edit in effect")
    what.add_argument("--list", action="store_true", help="list the re-prompts and edits")
    what.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="replay a prompt file (clicks, boxes, masks; written by --export-prompts): each prompt is committed "
        "and propagated in turn",
    )
    what.add_argument(
        "--export-prompts",
        type=Path,
        metavar="FILE",
        help="write the store's prompts in effect to FILE (.json), to replay on another machine or model",
    )
    p.add_argument(
        "--saved-masks",
        action="store_true",
        help="--prompts: commit the masks the file holds instead of segmenting its clicks and boxes again",
    )
    p.add_argument(
        "--segmenter",
        choices=["auto", "sam2", "grow"],
        default="auto",
        help="--prompts: what turns clicks and boxes into masks: SAM2's image path (auto with a SAM2 tracker) or "
        "the classical GrabCut/watershed (grow; auto with the flow tracker)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        help="the corrected frame: a label image (.png) or .npy (H, W); for a store made with --instances, its "
        "track ids (8- or 16-bit grey PNG, or .npy)",
    )
    p.add_argument(
        "--new-track",
        action="append",
        default=[],
        metavar="ID=CLASS",
        help="instances: the class (id or name) of a track id the corrected frame adds (repeat for several)",
    )
    add_encoding_option(p, "--labels-encoding", "the corrected frame")
    p.add_argument("--frames", type=Path, help="the store's video (default: where the store says it is)")
    t = p.add_argument_group(
        "tracker (default: the store's own, rebuilt from the run config it records; another is refused "
        "unless --other-tracker)"
    )
    t.add_argument("--tracker", choices=["sam2", "flow", "hf"])
    t.add_argument("--tracker-model", help="as for segment: an official SAM2 name, dis/farneback, or a HF model")
    t.add_argument("--sam2-config")
    t.add_argument("--sam2-checkpoint", type=Path)
    t.add_argument("--sam2-random-weights", action="store_true")
    t.add_argument("--image-size", type=int)
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    t.add_argument(
        "--other-tracker",
        action="store_true",
        help="edit with the tracker named by --tracker although the store was made with another (recorded in the edit log)",
    )
    p.set_defaults(func=run_edit_command)


def _tracker_config(args):
    """The tracker named by the flags (None: the store's own)."""
    from .core.config import TrackerConfig

    if not args.tracker:
        return None
    return TrackerConfig(
        kind=args.tracker,
        model=args.tracker_model,
        config=args.sam2_config,
        checkpoint=str(args.sam2_checkpoint) if args.sam2_checkpoint else None,
        random_weights=args.sam2_random_weights,
        image_size=args.image_size,
    )


def _new_tracks(args, store) -> dict[int, int]:
    """``--new-track ID=CLASS`` as track id -> class id."""
    from .core.errors import InputError

    out = {}
    names = {c.name.lower(): c.id for c in store.classes}
    for item in args.new_track:
        key, _, value = item.partition("=")
        try:
            cls = int(value) if value.strip().isdigit() else names[value.strip().lower()]
            out[int(key)] = cls
        except (ValueError, KeyError):
            raise InputError(
                f"--new-track {item}: give TRACK_ID=CLASS, the class an id or a name of {store.classes.name}."
            ) from None
    return out


def _read_track_map(path: Path):
    """A corrected frame's track ids: a grey PNG (8- or 16-bit) or a 2-D .npy of integers."""
    import numpy as np
    from PIL import Image

    from .core.errors import InputError

    try:
        arr = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else np.asarray(Image.open(path))
    except (OSError, ValueError) as e:
        raise InputError(f"--labels {path} cannot be read ({e}).") from None
    if arr.ndim != 2 or arr.dtype.kind not in "ui":
        raise InputError(f"--labels {path}: track ids are one integer per pixel (a grey PNG or a 2-D .npy).")
    return arr


def _read_correction(args, store):
    from .core.errors import InputError
    from .core.inputs.labels import open_labels

    if args.labels is None:
        raise InputError("--correct needs --labels FILE: the corrected frame (a label .png or .npy).")
    if store.tracks is not None:  # an instance store: the frame's track ids
        return _read_track_map(args.labels)
    src = args.labels
    if src.suffix.lower() == ".npy":
        import numpy as np

        arr = np.load(src, allow_pickle=False)
        src = arr[None] if arr.ndim == 2 else arr
    labels = open_labels(src, store.classes, args.labels_encoding)
    if len(labels) != 1:
        raise InputError(f"--labels {args.labels} holds {len(labels)} frames; give the one corrected frame.")
    return labels[0]


def run_edit_command(args) -> int:
    from ._cli_progress import Bars
    from .core.engine import EditRequest, EditStarted, FrameDone, iter_edit, undo_edit
    from .core.engine.rebuild import edit_tracker
    from .core.errors import InputError
    from .core.progress import drain
    from .core.prompts.files import PromptReplay
    from .core.store.edit_log import read_edits, reprompts
    from .core.store.sasvi_store import SasviStore

    store = SasviStore.read(args.store)
    if args.export_prompts is not None:
        from .core.prompts.files import not_replayed, write_prompt_file

        n = write_prompt_file(store, args.export_prompts)
        print(f"{n} prompt{'s' if n != 1 else ''} written to {args.export_prompts}")
        for line in not_replayed(store):  # so nobody expects a replay to rebuild the whole store
            print(f"note: {line}", file=sys.stderr)
        return 0
    if args.list:
        for r in reprompts(store):
            skipped = " (skipped)" if r["skipped"] else ""
            print(f"{r['frame']:6d}  {r['kind']}{skipped}  {r['reason']}")
        for e in read_edits(store.path):
            print(f"edit {e['id']}: {e['kind']} at {e['frame']}, frames {e['span'][0]}-{e['span'][1]}, {e['state']}")
        return 0
    if args.undo:
        rec = undo_edit(store.path)
        if rec is None:
            print("nothing to undo: the store has no edit in effect")
            return 0
        a = rec["span"][0]
        print(f"undone: edit {rec['id']} ({rec['kind']} at frame {rec['frame']}), frames {a}-{a + rec['written'] - 1}")
        return 0
    request = None
    if args.correct is not None:
        request = EditRequest("correction", args.correct, _read_correction(args, store), _new_tracks(args, store))
    elif args.pin is not None:
        request = EditRequest("pin", args.pin)
    elif args.skip is not None:
        request = EditRequest("skip", args.skip)
    if args.prompts is not None:
        from .core.prompts import read_prompt_file

        read_prompt_file(args.prompts, store)  # checked before a tracker is built: a wrong file costs nothing
    frames = args.frames or store.frames_path
    if frames is None or not Path(frames).exists():
        raise InputError(f"Where are the store's frames? It records {store.frames_path}; give them with --frames PATH.")
    tracker = edit_tracker(store, device=args.device, tracker=_tracker_config(args))
    bars, total = Bars(), 0

    def on_item(item) -> None:
        nonlocal total
        if isinstance(item, PromptReplay):  # a replay's next prompt
            p = item.prompt
            what = ", ".join(x for x in (f"{len(p.points)} clicks" if p.points else "", "a box" if p.box else "") if x)
            bars.close()
            print(
                f"prompt {item.index + 1}/{item.total}: object {p.object} on frame {p.frame} ({what or 'a mask'})",
                file=sys.stderr,
            )
        elif isinstance(item, EditStarted):
            p = item.plan
            print(
                f"edit {item.edit_id}: {p.kind} at frame {p.frame}: recomputing frames {p.start}-{p.stop}",
                file=sys.stderr,
            )
            total = p.n_frames
        elif isinstance(item, FrameDone) and total:
            bars.show("re-propagate", item.done, total)

    if request is None:  # a prompt file
        from .core.prompts import iter_replay

        work = iter_replay(
            store.path, str(frames), tracker, args.prompts, saved_masks=args.saved_masks, segmenter=args.segmenter,
            other_tracker=args.other_tracker,
        )  # fmt: skip
        try:
            summaries = drain(work, on_item)
        finally:
            bars.close()
        frames_done = sum(s.written for s in summaries)
        print(
            f"{len(summaries)} prompt{'s' if len(summaries) != 1 else ''} replayed: {frames_done} frames recomputed "
            f"in {sum(s.seconds for s in summaries):.1f} s (undo one: napari-sasvi edit {args.store} --undo)"
        )
        return 0
    try:
        summary = drain(iter_edit(store.path, str(frames), tracker, request, other_tracker=args.other_tracker), on_item)
    finally:
        bars.close()
    print(
        f"{summary.kind} at frame {summary.frame}: frames {summary.start}-{summary.start + summary.written - 1} "
        f"recomputed in {summary.seconds:.1f} s (undo: napari-sasvi edit {args.store} --undo)"
    )
    return 0
