"""``napari-sasvi train --overseer maskrcnn|detr|mask2former|pixel --dataset NAME --data ROOT --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def _frames(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--frames takes frame numbers separated by commas, got {text!r}") from e


def add_train(sub) -> None:
    from ._cli_segment import add_encoding_option

    p = sub.add_parser(
        "train",
        help="train an overseer from annotated frames: the published recipes, or a pixel classifier in seconds",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--overseer", required=True, choices=["pixel", "maskrcnn", "detr", "mask2former"])
    p.add_argument("--dataset", required=True, help="class table: cadis, cholecseg8k, cataract1k, synthetic or a file")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the dataset's root in its standard layout (CaDIS, Kaggle CholecSeg8k), or a labelled folder: "
        "frames/ + masks/ (or one such pair per video sub-folder)",
    )
    p.add_argument("--out", type=Path, required=True, help="a folder for the checkpoints (a previous run's resumes)")
    p.add_argument(
        "--layout", choices=["auto", "cadis", "cholecseg8k", "folder"], default="auto", help="how --data is laid out"
    )
    add_encoding_option(p, "--labels-encoding", "how the label files store classes")
    p.add_argument("--fraction", type=float, help="train on a seeded subset of this fraction of the training frames")
    p.add_argument("--seed", type=int, default=0, help="the subset, the sampling, the augmentation, the forest")
    p.add_argument(
        "--frames", type=_frames, help="train on these annotated frames of one video (0,36,71); the others validate"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    g = p.add_argument_group("maskrcnn / detr / mask2former (the reference's recipes)")
    g.add_argument("--steps", type=int, help="optimiser steps in all (default: --epochs epochs)")
    g.add_argument("--epochs", type=int, default=100)
    g.add_argument("--batch-size", type=int, help="default: the recipe's (8)")
    g.add_argument("--lr", type=float, help="default: the recipe's (Mask R-CNN 1e-4, DETR 1e-5, Mask2Former 1e-4)")
    g.add_argument("--val-every", type=int, help="validate and save every N steps (default: once per epoch)")
    g.add_argument("--budget-minutes", type=float, help="stop and save after this much training time")
    g.add_argument(
        "--pretrained",
        choices=["auto", "yes", "no"],
        default="auto",
        help="pretrained backbone: auto uses it when online and says when it trains from scratch",
    )
    g.add_argument("--no-balanced", action="store_true", help="sample frames uniformly, not class-balanced")
    g = p.add_argument_group("pixel")
    g.add_argument("--trees", type=int, default=60, help="trees of the random forest")
    g.add_argument("--work-side", type=int, default=320, help="longer side (px) the features are computed at")
    g.add_argument("--per-class", type=int, default=4000, help="annotated pixels drawn per class and frame")
    p.set_defaults(func=run_train_command)


def run_train_command(args) -> int:
    import logging

    from ._cli_progress import Bars, Progress
    from .core.datasets import canonical_dataset, get_class_table
    from .core.overseers.pixel import FeatureParams
    from .core.progress import Returning
    from .core.training.data import check_trainable, detect_layout, open_training_data
    from .core.training.deep import DeepParams
    from .core.training.events import Saved, Stage, TrainStep, Validated
    from .core.training.forest import PixelParams
    from .core.training.run import checkpoint_path, iter_train

    log = logging.getLogger("napari_sasvi.train")
    classes = get_class_table(args.dataset)
    layout = detect_layout(args.data, classes.name) if args.layout == "auto" else args.layout
    data = check_trainable(
        open_training_data(
            args.data,
            classes,
            layout,
            encoding=args.labels_encoding,
            fraction=args.fraction,
            seed=args.seed,
            frames=args.frames,
        )
    )
    print(
        f"train: {args.overseer} on {len(data.train)} frame(s), validation on {len(data.val)}, "
        f"{classes.name} classes, {layout} layout ({args.data})"
    )
    for line in data.readings[:5]:
        print(f"  labels: {line}")
    deep = DeepParams(
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_every=args.val_every,
        seed=args.seed,
        budget_s=None if args.budget_minutes is None else args.budget_minutes * 60,
        pretrained=args.pretrained,
        balanced=not args.no_balanced,
    )
    pixel = PixelParams(n_estimators=args.trees, per_class=args.per_class, seed=args.seed)
    run = Returning(
        iter_train(
            args.overseer,
            data,
            args.out,
            deep=deep,
            pixel=pixel,
            features=FeatureParams(work_side=args.work_side),
            device=args.device,
        )
    )
    bar: Progress | None = None
    stages = Bars(unit="item")
    try:
        for ev in run:
            if isinstance(ev, Stage):
                stages.show(ev.what, ev.done, ev.total)
            elif isinstance(ev, TrainStep):
                if bar is None:
                    stages.close()
                    bar = Progress(ev.total, "train", unit="step", initial=ev.step - 1)
                bar.update_to(ev.step, f"loss {ev.loss:.4f}")
            elif isinstance(ev, Validated):
                (bar or stages).write(
                    f"step {ev.step}: validation Dice {ev.dice:.4f}, IoU {ev.iou:.4f} on {ev.frames} frame(s)"
                )
            elif isinstance(ev, Saved):
                (bar or stages).write(f"step {ev.step}: saved {ev.path}")
    finally:
        stages.close()
        if bar is not None:
            bar.close()
    result = run.value
    ckpt = checkpoint_path(args.overseer, args.out)
    log.debug("training result %s", result)
    print(
        f"train: {result.steps} step(s) in {result.seconds:.1f} s; the overseer is {ckpt}\n"
        f"  use it: napari-sasvi segment VIDEO --dataset {canonical_dataset(args.dataset)} --overseer {args.overseer} "
        f"--overseer-checkpoint {ckpt} --out STORE.zarr"
    )
    return 0
