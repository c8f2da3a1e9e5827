"""The ``napari-sasvi`` command: argparse subcommands over the core library.

Importing this module pulls in no napari, qtpy or magicgui (a test enforces it); ``demo --view``
imports napari only when asked to open a viewer.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .core.errors import SasviError

log = logging.getLogger("napari_sasvi")


def _tqdm_progress(iterable, *, total=None, desc=None, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", dynamic_ncols=True, **kw)


# -- frames ----------------------------------------------------------------------------------------
def _add_frames(sub) -> None:
    p = sub.add_parser(
        "frames",
        help="write a video's frames as %%010d.jpg files (the layout the SASVi scripts read)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("video", type=Path, help="video file (.mp4/.avi/.mov/.mkv) or folder of frames")
    p.add_argument("out_dir", type=Path, help="folder to write the frames into")
    p.add_argument("--every", type=int, default=1, metavar="N", help="keep every N-th frame")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality 1-100")
    p.add_argument("--overwrite", action="store_true", help="replace image files already in OUT_DIR")
    p.set_defaults(func=_run_frames)


def _run_frames(args) -> int:
    from .core.export import export_frames

    n = export_frames(args.video, args.out_dir, every=args.every, quality=args.quality,
                      overwrite=args.overwrite, progress=_tqdm_progress)
    print(f"wrote {n} frames to {args.out_dir}")
    return 0


# -- demo ------------------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run on the embedded synthetic surgical sample (offline, no weights)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("sasvi-demo"), help="folder for the demo's outputs")
    p.add_argument("--frames", type=int, default=120, help="length of the synthetic clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic clip")
    p.add_argument("--view", action="store_true", help="open the result in napari (needs a display)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import time

    import numpy as np

    from .core.export import export_frames
    from .core.frames import open_frames
    from .core.synthetic import SyntheticVideo
    from .core.video import write_video

    video = SyntheticVideo(n_frames=args.frames, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    mp4 = args.out / f"{video.name}.mp4"
    print(f"synthetic clip: {video.n_frames} frames of {video.height} x {video.width}, "
          f"classes {', '.join(c.name for c in video.classes)}")
    write_video(mp4, (video.frame(t) for t in _tqdm_progress(range(video.n_frames), desc="encode")))
    folder = args.out / "frames"
    export_frames(mp4, folder, overwrite=True, progress=_tqdm_progress)
    t0 = time.perf_counter()
    stack = open_frames(folder)
    opened = time.perf_counter() - t0
    middle = stack.frame(len(stack) // 2)
    err = np.abs(middle.astype(int) - video.frame(len(stack) // 2).astype(int)).mean()
    print(f"reopened {folder} lazily in {opened * 1000:.1f} ms: {stack.shape}, "
          f"mean abs error after mp4 + jpg round trip {err:.1f} grey levels")
    presence = video.presence()
    for c in video.classes:
        frames = presence[c.id]
        span = f"frames {frames[0]}-{frames[-1]} ({len(frames)} frames)" if frames else "absent"
        print(f"  {c.id:2d} {c.name:<24s} {span}")
    if args.view:
        import napari

        from ._napari.sample import synthetic_sample

        viewer = napari.Viewer()
        viewer.open(str(mp4), plugin="napari-sasvi")
        for data, kwargs, kind in synthetic_sample(n_frames=args.frames, seed=args.seed)[1:]:
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        napari.run()
    return 0


# -- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sasvi",
        description="SASVi: segment whole surgical videos from a frame-wise overseer and SAM2.",
    )
    parser.add_argument("--version", action="version", version=f"napari-sasvi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_frames(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SasviError as e:
        print(f"napari-sasvi {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-sasvi {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
