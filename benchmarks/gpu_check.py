"""The Python half of benchmarks/gpu_check.sh (issue 12 item 5); see that script's header.

    python benchmarks/gpu_check.py cuda                       # exit 3 (and say why) without a CUDA GPU
    python benchmarks/gpu_check.py sam2 --rows FILE           # SAM2.1 tiny / large at 1024, bf16
    python benchmarks/gpu_check.py overseers --rows FILE      # Mask R-CNN, DETR, Mask2Former, batch 1 / 8
    python benchmarks/gpu_check.py table --rows FILE [--tests-log LOG] [--command CMD]

Every section appends one JSON line per result to ``--rows`` as soon as it has it, so what a
section measured survives a timeout or a crash of a later row; ``table`` prints them as one
markdown table. Random weights everywhere (nothing is downloaded): speed and memory do not depend
on the weights, except Mask R-CNN's post-processing (it grows with the detections) and DETR's mask
head (it runs on the queries the post-processing keeps: "5 kept" as a trained DETR, "100 kept"
the worst case, see benchmarks/bench_overseers.py).

Hidden, for checking the code paths without a GPU: ``--device cpu --quick`` (tiny sizes, few frames).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

SAM2_CONFIGS = (("SAM2.1 tiny", "sam2.1_hiera_t"), ("SAM2.1 large", "sam2.1_hiera_l"))


def _emit(path: str, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def _autocast(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- sections --------------------------------------------------------------------------------------
def cmd_cuda(_a) -> int:
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure is "no usable torch"
        print(f"gpu_check: torch does not import ({e}); run from the repo root with the project's venv.")
        return 3
    if not torch.cuda.is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        print(f"gpu_check: torch.cuda.is_available() is False ({why}; torch {torch.__version__}): nothing to check.")
        return 3
    print(f"gpu_check: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    return 0


def cmd_sam2(a) -> int:
    import numpy as np
    import torch

    from napari_sasvi.core.datasets import SYNTHETIC
    from napari_sasvi.core.engine import run_sasvi
    from napari_sasvi.core.inputs.frames import open_frames
    from napari_sasvi.core.overseers.replay import ReplayOverseer
    from napari_sasvi.core.policy import PolicyParams
    from napari_sasvi.core.synthetic import SyntheticVideo
    from napari_sasvi.core.trackers.base import compose_labels
    from napari_sasvi.core.trackers.sam2 import SAM2Tracker

    n, h, w, size = (4, 128, 160, 64) if a.quick else (a.frames, 480, 854, 1024)
    n_warm = 2 if a.quick else 4
    frames, labels = SyntheticVideo(n_frames=n, height=h, width=w, seed=0).arrays(noisy=True)
    setting = f"{size}, {'bf16 autocast' if a.device.startswith('cuda') else 'fp32'}, {n} frames {w}x{h}"
    params = PolicyParams(mode="default")
    for title, config in SAM2_CONFIGS:
        row = {"check": f"{title} (random weights)", "setting": setting}
        try:
            _reset_peak(a.device)
            t0 = time.perf_counter()
            tracker = SAM2Tracker(config=config, device=a.device, image_size=size, legacy=False)
            _sync(a.device)
            build = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as d, _autocast(a.device):
                # warm-up: kernels, allocator, the first prompts (not timed)
                warm = ReplayOverseer(labels[:n_warm], SYNTHETIC, frame_count=n_warm, frame_size=(h, w))
                run_sasvi(open_frames(frames[:n_warm], name="warm"), warm, tracker, d + "/warm.zarr", SYNTHETIC, params)
                # SASVi default mode, the whole run (policy, label composition, zarr writes)
                overseer = ReplayOverseer(labels, SYNTHETIC, frame_count=n, frame_size=(h, w))
                _reset_peak(a.device)
                _sync(a.device)
                t0 = time.perf_counter()
                s = run_sasvi(
                    open_frames(frames, name="synthetic"), overseer, tracker, d + "/run.zarr", SYNTHETIC, params
                )
                _sync(a.device)
                secs = time.perf_counter() - t0
                peak = _peak_mib(a.device)
                # SAM2 propagation alone: frame 0's classes prompted at frame 0
                tracker.bind(open_frames(frames, name="synthetic"))
                for c in np.unique(labels[0]):
                    if c in SYNTHETIC.ids and c not in SYNTHETIC.ignore_ids:
                        tracker.add_mask(0, int(c), labels[0] == c)
                _sync(a.device)
                t1 = time.perf_counter()
                for _t, logits in tracker.propagate(0):
                    compose_labels(logits, (h, w), SYNTHETIC.no_label, SYNTHETIC.ids)
                _sync(a.device)
                prop = time.perf_counter() - t1
            row.update(
                ok=True,
                fps=n / secs,
                prop_fps=n / prop,
                peak_mib=peak,
                seconds=build + secs + prop,
                note=f"build {build:.1f} s; SAM2 propagation alone {n / prop:.1f} frames/s; "
                f"{len(s.restarts)} restarts, {sum(e['kind'] == 'add_objects' for e in s.events)} additions",
            )
            del tracker
        except Exception as e:  # noqa: BLE001 - a failed row is reported, the others still run
            traceback.print_exc()
            row.update(ok=False, note=f"{type(e).__name__}: {str(e)[:200]}")
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
        _emit(a.rows, row)
    return 0


def cmd_overseers(a) -> int:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_overseers import _keep_only, load_frames

    from napari_sasvi.core.datasets import get_class_table
    from napari_sasvi.core.overseers.models import REFERENCE_SPECS, build_model
    from napari_sasvi.core.overseers.trained import TrainedOverseer

    n, n_detr, batches = (2, 1, (1, 2)) if a.quick else (a.frames, 8, (1, 8))
    frames, source = load_frames(max(n, max(batches)))
    source = "CholecSeg8k frames" if source.startswith("CholecSeg8k") else source
    kept = (5,) if a.quick else (5, 100)
    classes = get_class_table("cholecseg8k")
    settings = [("maskrcnn", None), *(("detr", k) for k in kept), ("mask2former", None)]
    for arch, k in settings:
        name = arch if k is None else f"detr ({k} kept)"
        spec = REFERENCE_SPECS[("cholecseg8k", arch)]
        try:
            _reset_peak(a.device)
            torch.manual_seed(0)
            t0 = time.perf_counter()
            ov = TrainedOverseer(build_model(spec), spec, classes, device=a.device)
            _sync(a.device)
            build = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            _emit(a.rows, {"check": f"overseer {name}", "setting": "build", "ok": False, "note": str(e)[:200]})
            continue
        if k is not None:
            _keep_only(ov, k)
        use = frames[: max(n_detr, max(batches))] if arch == "detr" else frames[:n]
        for batch in batches:
            row = {"check": f"overseer {name}", "setting": f"batch {batch}, fp32, CholecSeg8k architecture"}
            try:
                _reset_peak(a.device)
                ov.predict(use[:batch], list(range(batch)))  # warm-up at this batch size (not timed)
                _sync(a.device)
                timed = use[:n_detr] if arch == "detr" and batch == 1 else use
                found = 0
                t0 = time.perf_counter()
                for i in range(0, len(timed), batch):
                    chunk = timed[i : i + batch]
                    found += sum(len(r) for r in ov.predict(chunk, list(range(i, i + len(chunk)))))
                _sync(a.device)
                secs = time.perf_counter() - t0
                row.update(
                    ok=True,
                    fps=len(timed) / secs,
                    peak_mib=_peak_mib(a.device),
                    seconds=secs,
                    note=f"{len(timed)} x {source}; build {build:.1f} s; {found / len(timed):.1f} classes/frame",
                )
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                row.update(ok=False, note=f"{type(e).__name__}: {str(e)[:200]}")
            _emit(a.rows, row)
        del ov
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return 0


# -- the table -------------------------------------------------------------------------------------
def _tests_row(log: str, rc: int | None, selection: str, secs: float | None) -> dict:
    text = Path(log).read_text(errors="replace") if log and Path(log).is_file() else ""
    counts = {k: 0 for k in ("passed", "failed", "errors", "skipped", "deselected")}
    summary = [ln for ln in text.splitlines() if re.search(r"\b(passed|failed|error|no tests ran)\b", ln)]
    for m in re.finditer(r"(\d+) (passed|failed|errors?|skipped|deselected)", summary[-1] if summary else ""):
        key = "errors" if m.group(2).startswith("error") else m.group(2)
        counts[key] = int(m.group(1))
    if rc == 124:
        result = "TIMEOUT"
    elif rc == 5:
        result = "no test selected"
    else:
        result = f"{counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors"
        result += f", {counts['skipped']} skipped ({counts['deselected']} deselected)"
    ok = rc in (0, 5)
    return {"check": "CUDA tests", "setting": selection, "ok": ok, "seconds": secs, "note": result}


def cmd_table(a) -> int:
    import torch

    rows = []
    if a.tests_log:
        rows.append(_tests_row(a.tests_log, a.tests_rc, a.tests_selection, a.tests_seconds))
    path = Path(a.rows)
    if path.is_file():
        rows += [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip().startswith("{")]
    limits = a.timeouts or (None, None)
    for (label, rc), limit in zip((("sam2", a.sam2_rc), ("overseers", a.overseers_rc)), limits, strict=True):
        if rc not in (None, 0):
            why = f"timed out after {limit} s" if rc == 124 else f"exit status {rc}"
            log = f", see {a.work}/{label}.log" if a.work else ""
            rows.append({"check": f"{label} section", "setting": "-", "ok": False, "note": f"stopped: {why}{log}"})
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (CPU run)"
    print()
    print(f"# command: {a.command}")
    print(f"# GPU: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}; python {sys.version.split()[0]}")
    if a.total_seconds is not None:
        print(f"# total: {a.total_seconds:.0f} s")
    print("| check | setting | frames/s | peak GPU memory allocated (MiB) | seconds | result |")
    print("|---|---|---|---|---|---|")

    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    for r in rows:
        result = ("ok" if r.get("ok") else "FAILED") + (f": {r['note']}" if r.get("note") else "")
        print(
            f"| {r['check']} | {r.get('setting', '-')} | {num(r.get('fps'), '.2f')} | {num(r.get('peak_mib'), '.0f')} "
            f"| {num(r.get('seconds'), '.1f')} | {result} |"
        )
    return 0 if rows and all(r.get("ok") for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cuda")
    for name in ("sam2", "overseers"):
        p = sub.add_parser(name)
        p.add_argument("--rows", required=True)
        p.add_argument("--frames", type=int, default=40 if name == "sam2" else 16)
        p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
        p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    t = sub.add_parser("table")
    t.add_argument("--rows", required=True)
    t.add_argument("--command", default="bash benchmarks/gpu_check.sh")
    t.add_argument("--tests-log")
    t.add_argument("--tests-rc", type=int)
    t.add_argument("--tests-selection", default="")
    t.add_argument("--tests-seconds", type=float)
    t.add_argument("--sam2-rc", type=int)
    t.add_argument("--overseers-rc", type=int)
    t.add_argument("--timeouts", type=int, nargs=2, help="of the sam2 and overseers sections")
    t.add_argument("--work", help="where the sections' logs are")
    t.add_argument("--total-seconds", type=float)
    a = ap.parse_args()
    if a.cmd in ("sam2", "overseers") and a.device.startswith("cuda") and cmd_cuda(a):
        return 3
    return {"cuda": cmd_cuda, "sam2": cmd_sam2, "overseers": cmd_overseers, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
