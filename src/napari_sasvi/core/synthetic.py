"""A deterministic synthetic laparoscopic clip with ground truth, for samples, tests and benchmarks.

The scene: a circular field of view (class "Black Background" outside it) over textured tissue
(abdominal wall, liver, fat, gallbladder) that drifts slowly with the camera, and four
instruments (a grasper, an L-hook, a clipper and a second grasper), each a metallic shaft from a
trocar outside the image to a two-jaw tip, that enter, move, cross and leave at scheduled frames.
The two graspers cross: the second passes over the first (an instrument later in
:attr:`SyntheticVideo.instruments` is in front of the earlier ones and wins their pixels).
Instance ground truth, a noisy instance overseer and the instance-PNG writers are in
:mod:`~napari_sasvi.core.synthetic_instances`.

Every frame is rendered on demand from (seed, t): a clip of any length is lazy, and frame t is the
same whether it is rendered alone or in order. :meth:`SyntheticVideo.noisy_labels` adds
overseer-like errors to the ground truth (one-frame dropouts, spurious blobs, jittered boundaries,
a class confused with another for a few frames) at scheduled frames listed in
:attr:`SyntheticVideo.noise_events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .datasets import SYNTHETIC, ClassTable
from .synthetic_instances import InstanceTruth

BACKGROUND, WALL, LIVER, FAT, GALLBLADDER, GRASPER, HOOK, CLIPPER = range(8)

# Mean RGB of each tissue in the rendered image (not the label colours).
_TISSUE_RGB = {
    WALL: (196, 120, 112),
    LIVER: (128, 38, 34),
    FAT: (214, 178, 96),
    GALLBLADDER: (112, 128, 86),
}


@dataclass(frozen=True)
class Instrument:
    """One instrument: class id, trocar angle around the image centre (degrees), the frames
    during which its tip is inside the view, and how far it reaches in (fraction of the radius)."""

    class_id: int
    trocar_deg: float
    enter: int
    leave: int
    reach: float
    sway_deg: float
    sway_period: float
    width: float


@dataclass(frozen=True)
class NoiseEvent:
    """A scheduled overseer error: ``kind`` in dropout, confusion, blob; the frames it spans."""

    kind: str
    class_id: int
    first: int
    last: int
    other_id: int | None = None


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: random values on a coarse grid, bicubically upsampled."""
    import cv2

    h, w = shape
    gh, gw = max(2, h // cells), max(2, w // cells)
    coarse = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


class SyntheticVideo(InstanceTruth):
    """The synthetic clip (see the module docstring). Frames are (H, W, 3) uint8 RGB, labels
    (H, W) uint8 class ids of :data:`~napari_sasvi.core.datasets.SYNTHETIC`, instance labels
    (H, W) uint16 instrument ids (see :class:`~napari_sasvi.core.synthetic_instances.InstanceTruth`).

    The default schedule is laid out for 120 frames; other lengths scale it. With
    ``crossing=False`` the second grasper is left out: the clip is the three-instrument one that
    the benchmarks before it measured (same frames, labels and noisy labels).
    """

    classes: ClassTable = SYNTHETIC

    def __init__(self, n_frames: int = 120, height: int = 256, width: int = 320, seed: int = 0, crossing: bool = True):
        if n_frames < 1 or height < 32 or width < 32:
            raise ValueError("the synthetic clip needs at least 1 frame of 32 x 32 pixels")
        self.n_frames, self.height, self.width, self.seed = n_frames, height, width, seed
        self.name = f"synthetic_surgery_seed{seed}" + ("" if crossing else "_no_crossing")
        self.margin = max(height, width) // 8
        s = n_frames / 120.0
        self.instruments = (
            Instrument(
                GRASPER,
                trocar_deg=200,
                enter=round(10 * s),
                leave=round(104 * s),
                reach=0.75,
                sway_deg=22,
                sway_period=60 * s,
                width=0.045,
            ),
            Instrument(
                HOOK,
                trocar_deg=-8,
                enter=round(32 * s),
                leave=round(88 * s),
                reach=1.3,
                sway_deg=30,
                sway_period=44 * s,
                width=0.035,
            ),
            Instrument(
                CLIPPER,
                trocar_deg=95,
                enter=round(70 * s),
                leave=n_frames + 10,
                reach=0.6,
                sway_deg=15,
                sway_period=50 * s,
                width=0.05,
            ),
            # the second grasper: enters from the left below the first, swings up over it (its
            # unoccluded mask overlaps the first's on frames ~70-77 of 120, ~35-38 of 60), then
            # back down and out; drawn last, so in front of the first where they overlap
            Instrument(
                GRASPER,
                trocar_deg=170,
                enter=round(40 * s),
                leave=round(92 * s),
                reach=0.8,
                sway_deg=30,
                sway_period=60 * s,
                width=0.045,
            ),
        )[: 4 if crossing else 3]
        self.noise_events = (
            NoiseEvent("dropout", GRASPER, round(30 * s), round(30 * s)),
            NoiseEvent("dropout", LIVER, round(52 * s), round(52 * s)),
            NoiseEvent("dropout", HOOK, round(75 * s), round(75 * s)),
            NoiseEvent("confusion", HOOK, round(45 * s), round(48 * s), other_id=CLIPPER),
            NoiseEvent("blob", GALLBLADDER, round(20 * s), round(20 * s)),
            NoiseEvent("blob", CLIPPER, round(60 * s), round(61 * s)),
        )
        self._rendered: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._build_canvas()

    # -- static scene ----------------------------------------------------------------------------
    def _build_canvas(self) -> None:
        rng = np.random.default_rng(self.seed)
        m = self.margin
        ch, cw = self.height + 2 * m, self.width + 2 * m
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        yy /= ch
        xx /= cw
        # Each tissue wins where its smooth score is highest; spatial biases give a plausible
        # layout (wall at the top, liver upper right, gallbladder in the middle, fat below).
        scores = np.stack(
            [
                _smooth_field(rng, (ch, cw), 40) + 1.6 * (0.35 - yy),
                _smooth_field(rng, (ch, cw), 48) + 1.2 * (xx - 0.45) + 0.6 * (0.6 - yy),
                _smooth_field(rng, (ch, cw), 36) + 1.4 * (yy - 0.6),
                _smooth_field(rng, (ch, cw), 56) + 0.9 - 3.0 * np.hypot(xx - 0.45, yy - 0.55),
            ]
        )
        self._tissue = np.array([WALL, LIVER, FAT, GALLBLADDER], np.uint8)[scores.argmax(0)]
        # Texture: multi-scale noise, tissue-dependent colour, a few specular highlights.
        tex = 0.55 * _smooth_field(rng, (ch, cw), 6) + 0.3 * _smooth_field(rng, (ch, cw), 14)
        tex += 0.15 * rng.standard_normal((ch, cw)).astype(np.float32)
        base = np.zeros((ch, cw, 3), np.float32)
        for cid, rgb in _TISSUE_RGB.items():
            base[self._tissue == cid] = rgb
        img = base * (1.0 + 0.16 * tex[..., None])
        spec = _smooth_field(rng, (ch, cw), 5)
        img += 120.0 * np.clip(spec - 0.9, 0, None)[..., None] / 0.1
        self._canvas = np.clip(img, 0, 255).astype(np.float32)
        # Fixed in image coordinates: circular field of view and light falloff.
        y, x = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        cy, cx = (self.height - 1) / 2, (self.width - 1) / 2
        r = np.hypot((y - cy) / (0.62 * self.width), (x - cx) / (0.62 * self.width))
        self._fov = r <= 0.95
        self._light = np.clip(1.15 - 0.55 * r**2, 0.3, 1.2).astype(np.float32)[..., None]
        self._grid = (y, x)

    def camera_offset(self, t: int) -> tuple[int, int]:
        """(dy, dx) of the tissue under the camera at frame t (a slow, smooth drift)."""
        m = self.margin - 1
        dy = m * math.sin(2 * math.pi * t / 97.0 + 0.3 * self.seed)
        dx = m * math.sin(2 * math.pi * t / 131.0 + 1.0 + 0.7 * self.seed)
        return int(round(dy)), int(round(dx))

    # -- instruments -----------------------------------------------------------------------------
    def _instrument_geometry(self, ins: Instrument, t: int) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Trocar point, tip point (x, y) and half width in pixels at frame t, or None if out."""
        h, w = self.height, self.width
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        radius = 0.5 * math.hypot(h, w)
        ramp = max(3, round(6 * self.n_frames / 120))
        if t < ins.enter - ramp or t > ins.leave + ramp:
            return None
        # depth: 0 = tip on the image border, 1 = full reach; ramps in before `enter`, out after `leave`
        if t < ins.enter:
            depth = -(ins.enter - t) / ramp
        elif t > ins.leave:
            depth = -(t - ins.leave) / ramp
        else:
            depth = min(1.0, (t - ins.enter + 1) / ramp)
        a = math.radians(ins.trocar_deg)
        sway = math.radians(ins.sway_deg) * math.sin(2 * math.pi * (t - ins.enter) / ins.sway_period)
        trocar = centre + 1.6 * radius * np.array([math.cos(a), math.sin(a)])
        direction = -np.array([math.cos(a + sway), math.sin(a + sway)])
        # distance from the trocar to the view's border along `direction`
        to_border = 1.6 * radius - 0.98 * 0.62 * w
        length = to_border + depth * ins.reach * 0.62 * w + 2.0
        tip = trocar + length * direction
        return trocar, tip, ins.width * w

    def _draw_instrument(self, ins: Instrument, t: int):
        """Mask of the instrument and its shading (0..1), or None when it is out of view."""
        geo = self._instrument_geometry(ins, t)
        if geo is None:
            return None
        trocar, tip, half = geo
        y, x = self._grid
        d = tip - trocar
        length = float(np.hypot(*d))
        u = d / length
        rel_x, rel_y = x - trocar[0], y - trocar[1]
        along = rel_x * u[0] + rel_y * u[1]
        across = -rel_x * u[1] + rel_y * u[0]
        shaft = (along >= 0) & (along <= length - 1.4 * half) & (np.abs(across) <= half)
        # two jaws opening from the shaft's end
        jaw_base = length - 1.4 * half
        jaw_len = 1.8 * half
        jaws = np.zeros_like(shaft)
        for sign in (-1, 1):
            j_along = along - jaw_base
            spread = sign * 0.35 * half + sign * 0.25 * j_along
            jaws |= (j_along >= 0) & (j_along <= jaw_len) & (np.abs(across - spread) <= 0.35 * half)
        mask = (shaft | jaws) & self._fov
        if not mask.any():
            return None
        # cylinder shading across the shaft; jaws darker
        shade = 0.55 + 0.45 * np.cos(np.clip(across / max(half, 1e-3), -1, 1) * 1.3)
        shade = np.where(jaws & ~shaft, 0.35 * shade, shade)
        return mask, shade.astype(np.float32)

    # -- rendering -------------------------------------------------------------------------------
    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame (H, W, 3) uint8, labels (H, W) uint8) of frame t (the last two are cached)."""
        return self._render_all(t)[:2]

    def _render_all(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frame, labels, instance ids (H, W) uint16) of frame t, cached with :meth:`render`."""
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for {self.n_frames} frames")
        hit = self._rendered.get(t)
        if hit is None:
            hit = self._render(t)
            self._rendered[t] = hit
            while len(self._rendered) > 2:
                self._rendered.pop(next(iter(self._rendered)))
        return hit

    def _render(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dy, dx = self.camera_offset(t)
        m = self.margin
        sl = (slice(m + dy, m + dy + self.height), slice(m + dx, m + dx + self.width))
        labels = self._tissue[sl].copy()
        instances = np.zeros(labels.shape, np.uint16)
        img = self._canvas[sl] * self._light
        for k, ins in enumerate(self.instruments):
            drawn = self._draw_instrument(ins, t)
            if drawn is None:
                continue
            mask, shade = drawn
            metal = np.array([168.0, 172.0, 178.0], np.float32) * shade[..., None]
            img[mask] = metal[mask]
            labels[mask] = ins.class_id
            instances[mask] = k + 1
        noise = np.random.default_rng((self.seed, t)).normal(0, 3.0, img.shape).astype(np.float32)
        img = np.clip(img + noise, 0, 255)
        img[~self._fov] = 8.0
        labels[~self._fov] = BACKGROUND
        instances[~self._fov] = 0
        return img.astype(np.uint8), labels, instances

    def frame(self, t: int) -> np.ndarray:
        return self.render(t)[0]

    def labels(self, t: int) -> np.ndarray:
        return self.render(t)[1]

    def noisy_labels(self, t: int) -> np.ndarray:
        """Ground truth at t with overseer-like errors (deterministic in seed and t)."""
        gt = self.labels(t)
        rng = np.random.default_rng((self.seed, t, 7))
        out = self._jitter(gt, rng)
        h, w = gt.shape
        y, x = self._grid
        for ev in self.noise_events:
            if not ev.first <= t <= ev.last:
                continue
            if ev.kind == "dropout":
                out[out == ev.class_id] = SYNTHETIC.no_label
            elif ev.kind == "confusion":
                out[out == ev.class_id] = ev.other_id
            elif ev.kind == "blob":
                r = max(3, min(h, w) // 40)
                cy, cx = rng.integers(r + h // 4, 3 * h // 4 - r), rng.integers(r + w // 4, 3 * w // 4 - r)
                out[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = ev.class_id
        return out

    def _jitter(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A map of ids (uint8 or uint16) with jittered boundaries: resampled (nearest) through a
        smooth random displacement of ~2 px drawn from ``rng``."""
        import cv2

        h, w = ids.shape
        fy = _smooth_field(rng, (h, w), 24) * 2.5
        fx = _smooth_field(rng, (h, w), 24) * 2.5
        y, x = self._grid
        return cv2.remap(
            ids,
            (x + fx).astype(np.float32),
            (y + fy).astype(np.float32),
            cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_REPLICATE,
        )

    # -- stacks ------------------------------------------------------------------------------------
    def _lazy(self, fn, shape, dtype):
        from .inputs.lazy import lazy_stack

        return lazy_stack(fn, shape, dtype, f"{self.name}-{fn.__name__}-{self.n_frames}x{self.height}x{self.width}")

    def frames_dask(self):
        """(T, H, W, 3) uint8 dask array, one frame per chunk, rendered on demand."""
        return self._lazy(self.frame, (self.n_frames, self.height, self.width, 3), np.uint8)

    def labels_dask(self):
        return self._lazy(self.labels, (self.n_frames, self.height, self.width), np.uint8)

    def noisy_labels_dask(self):
        return self._lazy(self.noisy_labels, (self.n_frames, self.height, self.width), np.uint8)

    def arrays(self, noisy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The whole clip in memory: (frames (T, H, W, 3) uint8, labels (T, H, W) uint8); with
        ``noisy`` the labels are :meth:`noisy_labels` instead of the ground truth."""
        frames = np.empty((self.n_frames, self.height, self.width, 3), np.uint8)
        labels = np.empty((self.n_frames, self.height, self.width), np.uint8)
        for t in range(self.n_frames):
            frames[t] = self.frame(t)
            labels[t] = self.noisy_labels(t) if noisy else self.labels(t)
        return frames, labels

    def presence(self) -> dict[int, list[int]]:
        """class id -> frames where the ground truth shows it."""
        out: dict[int, list[int]] = {c.id: [] for c in self.classes}
        for t in range(self.n_frames):
            for c in np.unique(self.labels(t)):
                out[int(c)].append(t)
        return out


def synthetic_surgical_video(n_frames: int = 120, height: int = 256, width: int = 320, seed: int = 0):
    """The synthetic clip as arrays: (frames (T, H, W, 3) uint8, labels (T, H, W) uint8, class table)."""
    video = SyntheticVideo(n_frames, height, width, seed)
    frames, labels = video.arrays()
    return frames, labels, video.classes


def write_synthetic_videos(root, names, n_frames: int = 6, size: tuple[int, int] = (64, 80), seed: int = 0):
    """A root of synthetic videos on disk, the layout ``segment ROOT`` takes: PNG frame folders
    ``root/videos/<name>/<name>_frameNNNNNN.png`` and the noisy overseer's label PNGs (class ids)
    under ``root/masks/<name>/`` with the same names; video k has seed ``seed + k``. Returns
    (videos root, masks root)."""
    from pathlib import Path

    from PIL import Image

    frames_root, masks_root = Path(root) / "videos", Path(root) / "masks"
    for k, name in enumerate(names):
        video = SyntheticVideo(n_frames=n_frames, height=size[0], width=size[1], seed=seed + k)
        (frames_root / name).mkdir(parents=True)
        (masks_root / name).mkdir(parents=True)
        for t in range(n_frames):
            Image.fromarray(video.frame(t)).save(frames_root / name / f"{name}_frame{t:06d}.png")
            Image.fromarray(video.noisy_labels(t)).save(masks_root / name / f"{name}_frame{t:06d}.png")
    return frames_root, masks_root
