"""Draw the plugin's icon: three stacked video frames whose masks follow an instrument.

The napari hub and the plugin manager show it at 32 to 128 px, so it is drawn with few, large
shapes: the back frames are plain tissue, the front frame carries the masks (a liver region and an
instrument crossing it), and the instrument sits a little further along in each frame, which is the
"propagated through the video" part of the picture.

    python docs/make_icon.py            # writes src/napari_sasvi/resources/icon.png (256 x 256)
    python docs/make_icon.py out.png --size 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

DEFAULT_OUT = Path(__file__).parents[1] / "src" / "napari_sasvi" / "resources" / "icon.png"

# drawn on a 1024 px canvas and scaled down with a Lanczos filter: PIL draws without anti-aliasing
CANVAS = 1024
BORDER = (38, 40, 56, 255)
TISSUE = (214, 128, 122, 255)
TISSUE_SHADE = (187, 98, 96, 255)
LIVER = (60, 180, 75)
INSTRUMENT = (67, 99, 216)
GALLBLADDER = (255, 200, 40)


def _instrument(draw: ImageDraw.ImageDraw, x: int, y: int, fill: tuple[int, ...]) -> None:
    """A grasper shaft entering from the top right, its jaw ending at (x, y)."""
    draw.line([(x + 420, y - 380), (x, y)], fill=fill, width=78)
    draw.polygon([(x - 10, y - 55), (x - 105, y + 45), (x + 50, y + 5)], fill=fill)


def _frame_layer(box: tuple[int, int, int, int], tissue: tuple[int, ...], shift: int) -> Image.Image:
    """One frame: tissue, the masks (translucent fills with an opaque outline, as napari's labels
    layer shows them) with the instrument `shift` px further right, all cut to the frame's rounded
    box, and its border on top."""
    x0, y0, x1, y1 = box
    layer = Image.new("RGBA", (CANVAS, CANVAS), tissue)
    overlay = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    od.ellipse((x0 + 50, y0 + 230, x0 + 470, y1 - 40), fill=(*LIVER, 210), outline=(*LIVER, 255), width=18)
    od.ellipse((x0 + 470, y0 + 330, x0 + 660, y1 - 60), fill=(*GALLBLADDER, 220), outline=(*GALLBLADDER, 255), width=18)
    _instrument(od, x0 + 380 + shift, y0 + 300, (*INSTRUMENT, 255))
    layer = Image.alpha_composite(layer, overlay)
    inside = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(inside).rounded_rectangle(box, radius=56, fill=255)
    layer.putalpha(inside)
    ImageDraw.Draw(layer).rounded_rectangle(box, radius=56, outline=BORDER, width=28)
    return layer


def draw_icon(size: int = 256) -> Image.Image:
    """Return the icon as a square RGBA image of `size` px (transparent outside the frames)."""
    img = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    # three frames, back to front, each offset down-left: the time axis of the stack; the
    # instrument moves 70 px per frame, so each frame's masks differ a little from the next
    boxes = [(250, 60, 990, 620), (155, 205, 895, 765), (40, 360, 780, 920)]
    tissues = [TISSUE_SHADE, TISSUE_SHADE, TISSUE]
    for i, (box, tissue) in enumerate(zip(boxes, tissues, strict=True)):
        img = Image.alpha_composite(img, _frame_layer(box, tissue, shift=70 * (2 - i)))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--size", type=int, default=256, help="width and height in px (>= 128 for the hub)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_icon(args.size).save(args.out, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
