"""``napari-sasvi export STORE... --to nnunet|coco-video|png|overlay-mp4|mots|ome-zarr --out PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export finished stores for training: an nnU-Net v2 dataset, COCO-video JSON, palette PNGs, an overlay MP4, "
        "MOTS text, OME-Zarr",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("stores", type=Path, nargs="+", help="SASVi stores (.zarr folders), or a folder of stores")
    p.add_argument("--to", required=True, choices=["nnunet", "coco-video", "png", "overlay-mp4", "mots", "ome-zarr"])
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="nnunet: the nnUNet_raw folder (DatasetXXX_NAME is made inside); coco-video: a .json file; "
        "png: a folder (one sub-folder per store when several); overlay-mp4: an .mp4 file; "
        "mots: a folder (one <video>.txt per store); ome-zarr: a .zarr folder (one store: the frames as an "
        "NGFF 0.5 image, labels/sasvi, labels/overseer and labels/tracks inside)",
    )
    p.add_argument(
        "--array",
        choices=["labels", "overseer"],
        default="labels",
        help="SASVi's labels or the overseer's (ome-zarr: both, always)",
    )
    p.add_argument("--every", type=int, default=1, help="export every N-th frame (consecutive frames are near copies)")
    p.add_argument(
        "--frames",
        type=Path,
        action="append",
        help="nnunet/overlay-mp4/ome-zarr: the frames, when they moved since the run (once per store, in order)",
    )
    p.add_argument(
        "--ids",
        choices=["class", "track"],
        help="what the masks name. png: class ids in palette PNGs (the default) or track ids in grey PNGs with "
        "instances.json (--instances stores); coco-video: one track per object for --instances stores (the "
        "default), per class with 'class'; mots: track only; ome-zarr: 'track' requires labels/tracks, 'class' "
        "leaves it out (default: there for --instances stores)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an export napari-sasvi wrote there before")
    g = p.add_argument_group("nnunet")
    g.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id (1..999)")
    g.add_argument("--dataset-name", default="SASVi", help="nnU-Net dataset name (letters, digits, '-')")
    g = p.add_argument_group("png")
    g.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="resize (nearest); default: the frame size")
    g.add_argument(
        "--reference-layout", action="store_true", help="name files <frame>_rgb_mask.png as the published scripts do"
    )
    g = p.add_argument_group("overlay-mp4")
    g.add_argument("--opacity", type=float, default=0.5, help="label opacity over the frames (0..1)")
    g.add_argument("--fps", type=float, help="frame rate (default: the source video's, else 25)")
    g = p.add_argument_group("mots")
    g.add_argument(
        "--frame-base",
        type=int,
        choices=[0, 1],
        default=0,
        help="number of the first frame: 0 as KITTI MOTS, 1 as MOTSChallenge",
    )
    p.set_defaults(func=run_export_command)


def run_export_command(args) -> int:
    from ._cli_progress import Progress
    from .core.errors import InputError
    from .core.exports import iter_export
    from .core.progress import Returning

    kwargs: dict = {"every": args.every, "array": args.array, "overwrite": args.overwrite}
    if args.to == "ome-zarr":
        if args.array != "labels":
            raise InputError("--array is not for --to ome-zarr: it holds SASVi's labels and the overseer's both.")
        del kwargs["array"]
    if args.to == "nnunet":
        kwargs.update(dataset_id=args.dataset_id, dataset_name=args.dataset_name)
    if args.to == "png":
        kwargs.update(size=tuple(args.size) if args.size else None, reference_layout=args.reference_layout)
    if args.to == "overlay-mp4":
        kwargs.update(opacity=args.opacity, fps=args.fps)
    if args.to == "mots":
        kwargs.update(frame_base=args.frame_base)
    if args.ids is not None:
        if args.to not in ("png", "coco-video", "mots", "ome-zarr"):
            raise InputError("--ids is for --to png, coco-video, mots and ome-zarr.")
        kwargs["ids"] = args.ids
    if args.frames:
        if args.to not in ("nnunet", "overlay-mp4", "ome-zarr"):
            raise InputError("--frames is for --to nnunet, overlay-mp4 and ome-zarr (the others read no frames).")
        kwargs["frames"] = args.frames if args.to == "nnunet" else args.frames[0]
    bar = None
    run = Returning(iter_export(args.stores, args.to, args.out, **kwargs))
    try:
        for item in run:
            if bar is None:
                bar = Progress(item.total, f"export {args.to}")
            bar.update_to(item.done, item.video)
    finally:
        if bar is not None:
            bar.close()
    summary = run.value
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    n = sum(summary.frames.values())
    print(f"{n} frames of {len(summary.frames)} video(s) exported to {summary.path}")
    return 0
