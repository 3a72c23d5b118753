"""Annotated PNGs that show exactly what was measured (numpy + Pillow).

Inside this module only, drawing uses ``(x, y) = (col, row)``. The construction
is computed in image pixels ``(row, col)`` by
:func:`kneemeasure.report.construction.construction_segments` (the same
function the interactive window draws from) and mapped to the canvas by each
panel's transform (scale, offset, aspect). Pixels are shown with
``aspect = row_spacing / col_spacing`` so anisotropic images look anatomically
right and perpendicular lines look perpendicular.

Lines and markers are drawn on a 2x supersampled copy of each panel and reduced
(anti-aliasing); text is drawn afterwards at full resolution with the DejaVu
fonts that ship with matplotlib, found without importing matplotlib (this module
must stay cheap to import: it runs in the renderer process of ``measure``).
Sizes are given in points at 110 dpi, the scale of the former matplotlib figure.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kneemeasure.models import Measurement
from kneemeasure.report.construction import (
    STYLES,
    construction_segments,
    side_labels,
    zoom_box_px,
)

#: zlib level 1: writing the PNG takes a third of the time of the default level 6
#: for a file about 25 % larger (still lossless).
PNG_WRITE = {"compress_level": 1}

FLAG_COLOURS = {"extruded": "#e8202a", "normal": "#2fbf4a", "review": "#ff9f1a"}

#: Canvas pixels per point (the measurement PNG is laid out as a 110 dpi figure).
_PT = 110 / 72
#: Supersampling factor of the graphics layer (lines, markers, legend boxes).
_SS = 2
_CONSTRUCTION_BLUE = "#33c3ff"
_PROFILE_BLUE = "#3366cc"
_FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def window(
    image: np.ndarray, *, low_pct: float = 1.0, high_pct: float = 99.5
) -> tuple[float, float]:
    """Display window (vmin, vmax) from intensity percentiles of the non-background pixels."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    fg = finite[finite > np.percentile(finite, 5)] if finite.size > 100 else finite
    if fg.size == 0:
        fg = finite
    lo, hi = np.percentile(fg, [low_pct, high_pct])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _flag(m: Measurement) -> tuple[str, str]:
    if m.status == "review":
        label = "REVIEW"
        if m.extruded is not None:
            label += " (extruded)" if m.extruded else " (not extruded)"
        return label, FLAG_COLOURS["review"]
    if m.extruded:
        return f"EXTRUDED (>= {m.threshold_mm:g} mm)", FLAG_COLOURS["extruded"]
    return f"not extruded (< {m.threshold_mm:g} mm)", FLAG_COLOURS["normal"]


# ---------------------------------------------------------------- fonts and text


@functools.lru_cache(maxsize=1)
def _font_dir() -> Path | None:
    """matplotlib's bundled TTF folder, located without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
    return folder if folder.is_dir() else None


@functools.lru_cache(maxsize=64)
def _font(size: int, bold: bool = False) -> Font:
    """DejaVu Sans (Bold) at ``size`` pixels; Pillow's default font when not found."""
    folder = _font_dir()
    if folder is not None and (folder / _FONT_FILES[bold]).is_file():
        try:
            return ImageFont.truetype(str(folder / _FONT_FILES[bold]), size)
        except OSError:
            pass  # unreadable font file or no FreeType: Pillow's own font below
    return ImageFont.load_default(size=size)


def _font_px(font: Font) -> int:
    """Nominal size (pixels) of a font; Pillow's bitmap fallback counts as 10."""
    return font.size if isinstance(font, ImageFont.FreeTypeFont) else 10


def _px(points: float) -> int:
    """Font size in canvas pixels for a size in points."""
    return max(6, round(points * _PT))


def _text_size(text: str, font: Font) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom - top)


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    *,
    font: Font,
    fill: str | tuple = "black",
    anchor: str = "la",
) -> None:
    """One line of text; ``anchor`` as Pillow's (``l/m/r`` + ``a/m/s/d``)."""
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text(xy, text, font=font, fill=fill, anchor=anchor)
        return
    # bitmap fallback font: no anchors, align by its box
    w, h = _text_size(text, font)
    x = xy[0] - {"l": 0, "m": w / 2, "r": w}[anchor[0]]
    y = xy[1] - {"a": 0, "t": 0, "m": h / 2, "s": h, "d": h}[anchor[1]]
    draw.text((x, y), text, font=font, fill=fill)


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _rgba(colour: str, alpha: float) -> tuple[int, int, int, int]:
    return (*_rgb(colour), round(255 * alpha))


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _View:
    """Where an image region is drawn: canvas rectangle and image-to-canvas transform.

    ``row0, col0`` are the image coordinates (pixel centres at integers) of the
    rectangle's top-left corner, ``sy, sx`` canvas pixels per image pixel.
    """

    x0: int
    y0: int
    w: int
    h: int
    row0: float
    col0: float
    sy: float
    sx: float

    def local(self, rc: Sequence[float], scale: float = 1.0) -> tuple[float, float]:
        """Draw coordinates ``(x, y)`` of an image point in the panel image at ``scale``."""
        return (
            (rc[1] - self.col0) * self.sx * scale - 0.5,
            (rc[0] - self.row0) * self.sy * scale - 0.5,
        )

    def canvas(self, rc: Sequence[float]) -> tuple[float, float]:
        """Canvas ``(x, y)`` (pixel centres at integers) of an image point."""
        x, y = self.local(rc)
        return self.x0 + x, self.y0 + y


def _fit_view(
    box: tuple[int, int, int, int],
    rows: tuple[float, float],
    cols: tuple[float, float],
    *,
    row_mm: float,
    col_mm: float,
) -> _View:
    """Fit the image region ``rows`` x ``cols`` (edges) into ``box``, physical aspect, centred."""
    bx, by, bw, bh = box
    height_mm = (rows[1] - rows[0]) * row_mm
    width_mm = (cols[1] - cols[0]) * col_mm
    s = min(bw / width_mm, bh / height_mm)
    w = max(1, min(bw, round(width_mm * s)))
    h = max(1, min(bh, round(height_mm * s)))
    return _View(
        x0=bx + (bw - w) // 2,
        y0=by + (bh - h) // 2,
        w=w,
        h=h,
        row0=rows[0],
        col0=cols[0],
        sy=h / (rows[1] - rows[0]),
        sx=w / (cols[1] - cols[0]),
    )


def _gray8(image: np.ndarray) -> Image.Image:
    """The image windowed to 8-bit grayscale (``window``), NaN shown black."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    lo, hi = window(img)
    scaled = (img - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def _render_view(gray: Image.Image, view: _View, scale: int) -> Image.Image:
    """Bilinear resampling of the view's image region to ``scale`` x its canvas size (RGB).

    Pixels outside the image are black.
    """
    # Pillow's continuous coordinates: pixel i covers [i, i + 1), so image
    # coordinate c (pixel centres at integers) is c + 0.5
    left, top = view.col0 + 0.5, view.row0 + 0.5
    right, bottom = left + view.w / view.sx, top + view.h / view.sy
    size = (view.w * scale, view.h * scale)
    if left >= 0 and top >= 0 and right <= gray.width and bottom <= gray.height:
        out = gray.resize(size, Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    else:  # part of the view lies outside the image: crop pads with black
        x0, y0 = math.floor(left) - 1, math.floor(top) - 1
        region = gray.crop((x0, y0, math.ceil(right) + 1, math.ceil(bottom) + 1))
        box = (left - x0, top - y0, right - x0, bottom - y0)
        out = region.resize(size, Image.Resampling.BILINEAR, box=box)
    return out.convert("RGB")


# ---------------------------------------------------------------- primitives (draw units)


def _r(p: tuple[float, float]) -> tuple[int, int]:
    """Nearest pixel: Pillow truncates float coordinates of lines and boxes."""
    return math.floor(p[0] + 0.5), math.floor(p[1] + 0.5)


def _dashed(
    draw: ImageDraw.ImageDraw,
    a: tuple[float, float],
    b: tuple[float, float],
    *,
    fill: str | tuple,
    width: float,
    ls: str,
) -> None:
    """A straight line, solid ``-``, dashed ``--`` or dotted ``:`` (matplotlib's patterns)."""
    wpx = max(1, round(width))
    if ls == "-":
        draw.line([_r(a), _r(b)], fill=fill, width=wpx)
        return
    on, off = (3.7, 1.6) if ls == "--" else (1.0, 1.65)
    on, off = on * width, off * width
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if length == 0:
        return
    dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    t = 0.0
    while t < length:
        t1 = min(length, t + on)
        draw.line(
            [_r((a[0] + dx * t, a[1] + dy * t)), _r((a[0] + dx * t1, a[1] + dy * t1))],
            fill=fill,
            width=wpx,
        )
        t = t1 + off


def _arrow(
    draw: ImageDraw.ImageDraw,
    a: tuple[float, float],
    b: tuple[float, float],
    *,
    fill: str,
    width: float,
    scale: float,
) -> None:
    """Double-headed arrow ``<->`` from ``a`` to ``b``.

    Open heads 4 pt long and 2 pt wide each side (matplotlib's), shortened to a
    third of the arrow on short arrows so both heads stay readable.
    """
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if length < 1:
        return
    dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    wpx = max(1, round(width))
    draw.line([_r(a), _r(b)], fill=fill, width=wpx)
    head_len = min(4 * _PT * scale, length / 3)
    head_half = head_len / 2
    for tip, sgn in ((a, -1.0), (b, 1.0)):
        ux, uy = dx * sgn, dy * sgn  # pointing out of the shaft at this tip
        base = (tip[0] - ux * head_len, tip[1] - uy * head_len)
        left = (base[0] - uy * head_half, base[1] + ux * head_half)
        right = (base[0] + uy * head_half, base[1] - ux * head_half)
        draw.line([_r(left), _r(tip), _r(right)], fill=fill, width=wpx, joint="curve")


def _marker(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    marker: str,
    *,
    colour: str,
    ms: float,
    mew: float,
    scale: float,
    filled: bool = False,
) -> None:
    """A matplotlib-style marker (``o x + ^ s``), size ``ms`` and edge ``mew`` in points."""
    x, y = _r(xy)
    half = ms * _PT * scale / 2
    edge = mew * _PT * scale
    wpx = max(1, round(edge))
    if marker in ("x", "+"):
        if marker == "x":
            segs = [((x - half, y - half), (x + half, y + half)),
                    ((x - half, y + half), (x + half, y - half))]  # fmt: skip
        else:
            segs = [((x - half, y), (x + half, y)), ((x, y - half), (x, y + half))]
        for p, q in segs:
            draw.line([_r(p), _r(q)], fill=colour, width=wpx)
        return
    outer = round(half + edge / 2)
    if marker == "o":
        box = [x - outer, y - outer, x + outer, y + outer]
        draw.ellipse(box, fill=colour if filled else None, outline=colour, width=wpx)
    elif marker == "s":
        box = [x - outer, y - outer, x + outer, y + outer]
        draw.rectangle(box, fill=colour if filled else None, outline=colour, width=wpx)
    elif marker == "^":
        pts = [(x, y - outer), (x - outer, y + outer), (x + outer, y + outer)]
        draw.polygon(pts, fill=colour if filled else None, outline=colour, width=wpx)
    else:
        raise ValueError(f"unknown marker {marker!r}: use one of o x + ^ s")


@dataclass
class _LegendEntry:
    label: str
    colour: str
    ls: str | None = None  # line style of the handle, or None
    lw: float = 1.0  # points
    marker: str | None = None
    ms: float = 5.0
    mew: float = 1.0
    filled: bool = False


def _align(lo: int, extent: int, size: int, margin: int, *, start: bool, end: bool) -> int:
    """Where a box of ``size`` starts in ``[lo, lo + extent)``: at the start, the end
    (``margin`` inside) or centred."""
    if start:
        return lo + margin
    if end:
        return lo + extent - margin - size
    return lo + (extent - size) // 2


def _legend_layout(
    entries: list[_LegendEntry], *, font: Font, corner: str, area: tuple[int, int, int, int]
) -> tuple[tuple[int, int, int, int], list[tuple[int, int]]]:
    """Box ``(x0, y0, x1, y1)`` and handle centres of a legend in ``corner`` of ``area``.

    ``area`` is ``(x0, y0, w, h)``; ``corner`` is e.g. ``"lower left"``,
    ``"center right"`` or ``"center"``. All in 1x
    pixels of the same frame as ``area``.
    """
    fs = _font_px(font)
    pad, gap, handle, row_h = round(0.5 * fs), round(0.8 * fs), 2 * fs, round(1.5 * fs)
    text_w = max(_text_size(e.label, font)[0] for e in entries)
    bw = 2 * pad + handle + gap + text_w
    bh = 2 * pad + len(entries) * row_h - (row_h - round(1.1 * fs))
    ax0, ay0, aw, ah = area
    margin = round(0.5 * fs)
    x0 = _align(ax0, aw, bw, margin, start="left" in corner, end="right" in corner)
    y0 = _align(ay0, ah, bh, margin, start="upper" in corner, end="lower" in corner)
    centres = [
        (x0 + pad + handle // 2, y0 + pad + i * row_h + round(0.55 * fs))
        for i in range(len(entries))
    ]
    return (x0, y0, x0 + bw, y0 + bh), centres


def _draw_legend_graphics(
    draw: ImageDraw.ImageDraw,
    entries: list[_LegendEntry],
    box: tuple[int, int, int, int],
    centres: list[tuple[int, int]],
    *,
    handle: int,
    offset: tuple[int, int],
    scale: int,
    alpha: float,
) -> None:
    """Legend frame and handles, drawn at ``scale`` into a layer whose origin is ``offset``."""
    ox, oy = offset
    s = scale
    frame = [(box[0] - ox) * s, (box[1] - oy) * s, (box[2] - ox) * s, (box[3] - oy) * s]
    draw.rounded_rectangle(
        frame, radius=3 * s, fill=(255, 255, 255, round(255 * alpha)),
        outline=(204, 204, 204, round(255 * alpha)), width=s,
    )  # fmt: skip
    for e, (cx, cy) in zip(entries, centres, strict=True):
        x, y = (cx - ox) * s, (cy - oy) * s
        if e.ls is not None:
            _dashed(
                draw, (x - handle * s / 2, y), (x + handle * s / 2, y),
                fill=e.colour, width=e.lw * _PT * s, ls=e.ls,
            )  # fmt: skip
        if e.marker is not None:
            _marker(draw, (x, y), e.marker, colour=e.colour, ms=e.ms, mew=e.mew, scale=s,
                    filled=e.filled)  # fmt: skip


def _draw_legend_text(
    draw: ImageDraw.ImageDraw,
    entries: list[_LegendEntry],
    centres: list[tuple[int, int]],
    *,
    font: Font,
    handle: int,
    gap: int,
) -> None:
    for e, (cx, cy) in zip(entries, centres, strict=True):
        _text(draw, (cx + handle // 2 + gap, cy), e.label, font=font, anchor="lm")


# ---------------------------------------------------------------- image panels


def _construction_entries(seg: dict[str, np.ndarray], *, lw: float) -> list[_LegendEntry]:
    """Legend entries of the drawn construction elements (no arrow), in drawing order."""
    out = []
    for name in seg:
        st = STYLES[name]
        if st["kind"] == "line":
            out.append(_LegendEntry(name, st["colour"], ls=st["ls"], lw=lw * st["lw"]))
        elif st["kind"] == "marker":
            out.append(_LegendEntry(name, st["colour"], marker=st["marker"], ms=st["ms"],
                                    mew=st["mew"]))  # fmt: skip
    return out


def _draw_construction_layer(
    draw: ImageDraw.ImageDraw,
    view: _View,
    seg: dict[str, np.ndarray],
    *,
    lw: float,
    flag_colour: str,
    scale: int,
) -> None:
    """The construction (image pixels) mapped through ``view`` and drawn at ``scale``."""
    for name, pts in seg.items():
        st = STYLES[name]
        colour = st["colour"] or flag_colour
        if st["kind"] == "line":
            _dashed(draw, view.local(pts[0], scale), view.local(pts[1], scale), fill=colour,
                    width=lw * st["lw"] * _PT * scale, ls=st["ls"])  # fmt: skip
        elif st["kind"] == "arrow":
            _arrow(draw, view.local(pts[0], scale), view.local(pts[1], scale), fill=colour,
                   width=lw * st["lw"] * _PT * scale, scale=scale)  # fmt: skip
        else:
            _marker(draw, view.local(pts, scale), st["marker"], colour=colour, ms=st["ms"],
                    mew=st["mew"], scale=scale)  # fmt: skip


def _image_panel(
    canvas: Image.Image,
    gray: Image.Image,
    view: _View,
    *,
    seg: dict[str, np.ndarray],
    lw: float,
    flag_colour: str,
    zoom_rect: tuple[float, float, float, float] | None = None,
    legend: list[_LegendEntry] | None = None,
) -> None:
    """Image + construction (+ zoom rectangle, + legend) of one panel, pasted on ``canvas``."""
    s = _SS
    layer = _render_view(gray, view, s)
    draw = ImageDraw.Draw(layer, "RGBA")
    _draw_construction_layer(draw, view, seg, lw=lw, flag_colour=flag_colour, scale=s)
    if zoom_rect is not None:
        r0, r1, c0, c1 = zoom_rect
        corners = [view.local(rc, s) for rc in ((r0, c0), (r0, c1), (r1, c1), (r1, c0))]
        for i in range(4):
            _dashed(draw, corners[i], corners[(i + 1) % 4], fill=_CONSTRUCTION_BLUE,
                    width=0.8 * _PT * s, ls=":")  # fmt: skip
    font = _font(_px(6.5))
    fs = _font_px(font)
    if legend:
        box, centres = _legend_layout(
            legend, font=font, corner="lower left", area=(view.x0, view.y0, view.w, view.h)
        )
        _draw_legend_graphics(draw, legend, box, centres, handle=2 * fs,
                              offset=(view.x0, view.y0), scale=s, alpha=0.6)  # fmt: skip
    canvas.paste(layer.reduce(s), (view.x0, view.y0))
    cdraw = ImageDraw.Draw(canvas)
    cdraw.rectangle([view.x0 - 1, view.y0 - 1, view.x0 + view.w, view.y0 + view.h],
                    outline="black", width=1)  # fmt: skip
    if legend:
        _draw_legend_text(cdraw, legend, centres, font=font, handle=2 * fs, gap=round(0.8 * fs))


def _side_labels(canvas: Image.Image, view: _View, m: Measurement) -> None:
    """MEDIAL / LATERAL, white bold on a semi-transparent black box, top corners of ``view``."""
    labels = side_labels(m)
    if labels is None:
        return
    left, right = labels
    font = _font(_px(8), bold=True)
    draw = ImageDraw.Draw(canvas, "RGBA")
    pad = round(0.3 * _px(8))
    top = view.y0 + round(0.01 * view.h) + pad
    for text, x, anchor in (
        (left, view.x0 + round(0.01 * view.w) + pad, "la"),
        (right, view.x0 + view.w - round(0.01 * view.w) - pad, "ra"),
    ):
        w, _ = _text_size(text, font)
        x0 = x if anchor == "la" else x - w
        asc, desc = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (10, 2)
        draw.rectangle([x0 - pad, top - pad, x0 + w + pad, top + asc + desc + pad],
                       fill=(0, 0, 0, 153))  # fmt: skip
        _text(draw, (x, top), text, font=font, fill="white", anchor=anchor)


# ---------------------------------------------------------------- profile chart


def _nice_ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """About ``n`` round tick values (steps 1, 2, 2.5, 5 x 10^k) within ``[lo, hi]``.

    With ``integer=True`` the step is a whole number (instance numbers).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, n)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = 10 * mag
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        cand = mult * mag
        if integer and (cand < 1 or abs(cand - round(cand)) > 1e-9):
            continue
        if cand >= raw * (1 - 1e-9):
            step = cand
            break
    if integer:
        step = max(1.0, float(round(step)))
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _tick_label(value: float, step: float) -> str:
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text.replace("-", "\u2212")


def _profile_data(m: Measurement) -> dict[str, list[tuple[float, float]]]:
    prof = [
        r for r in m.slice_profile
        if r.get("extrusion_mm") is not None and r.get("instance_number") is not None
    ]  # fmt: skip
    out = {
        "ok": [(float(r["instance_number"]), float(r["extrusion_mm"]))
               for r in prof if r.get("status") == "ok"],
        "review": [(float(r["instance_number"]), float(r["extrusion_mm"]))
                   for r in prof if r.get("status") != "ok"],
        "max": [],
        "reference": [],
    }  # fmt: skip
    if m.max_extrusion_mm is not None and m.max_extrusion_instance is not None:
        out["max"] = [(float(m.max_extrusion_instance), float(m.max_extrusion_mm))]
    if m.instance_number is not None and m.extrusion_mm is not None:
        out["reference"] = [(float(m.instance_number), float(m.extrusion_mm))]
    return out


@dataclass(frozen=True)
class _ChartAxes:
    """Axes rectangle (canvas pixels) and data limits of the profile chart."""

    x0: int
    y0: int
    w: int
    h: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def local(self, x: float, y: float, scale: float = 1.0) -> tuple[float, float]:
        """Draw coordinates in the axes layer at ``scale`` of a data point."""
        fx = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (self.ylim[1] - y) / (self.ylim[1] - self.ylim[0])
        return fx * self.w * scale - 0.5, fy * self.h * scale - 0.5

    def canvas(self, x: float, y: float) -> tuple[float, float]:
        lx, ly = self.local(x, y)
        return self.x0 + lx, self.y0 + ly


def _limits(values: list[float], margin: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        return lo - 1.0, hi + 1.0
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def _profile_axes(m: Measurement, data: dict[str, list[tuple[float, float]]],
                  box: tuple[int, int, int, int]) -> _ChartAxes:  # fmt: skip
    """Axes of the profile chart in ``box``: limits around ``data`` and the threshold."""
    pts = [p for key in data for p in data[key]]
    xs = [p[0] for p in pts] or [0.0]
    ys = [p[1] for p in pts] + [float(m.threshold_mm)]
    return _ChartAxes(*box, xlim=_limits(xs), ylim=_limits(ys))


def _profile_panel(canvas: Image.Image, m: Measurement, box: tuple[int, int, int, int]) -> None:
    """The slice-profile chart (extrusion against instance number) in ``box``."""
    data = _profile_data(m)
    ax = _profile_axes(m, data, box)
    s = _SS
    layer = Image.new("RGB", (ax.w * s, ax.h * s), "white")
    draw = ImageDraw.Draw(layer, "RGBA")
    # as many ticks as matplotlib's "auto" locator gives: one per ~50 pixels
    xticks = _nice_ticks(*ax.xlim, n=max(3, min(9, ax.w // 50)), integer=True)
    yticks = _nice_ticks(*ax.ylim, n=max(3, min(9, ax.h // 50)))
    for t in xticks:
        x, _ = ax.local(t, 0.0, s)
        draw.line([_r((x, 0)), _r((x, ax.h * s))], fill=(176, 176, 176, 77), width=s)
    for t in yticks:
        _, y = ax.local(0.0, t, s)
        draw.line([_r((0, y)), _r((ax.w * s, y))], fill=(176, 176, 176, 77), width=s)
    red = FLAG_COLOURS["extruded"]
    _, ythr = ax.local(0.0, m.threshold_mm, s)
    _dashed(draw, (0, ythr), (ax.w * s, ythr), fill=red, width=1.0 * _PT * s, ls="--")
    ok = [ax.local(x, y, s) for x, y in data["ok"]]
    if len(ok) > 1:
        width = round(1.5 * _PT * s)
        draw.line([_r(p) for p in ok], fill=_PROFILE_BLUE, width=width, joint="curve")
    for p in ok:
        _marker(draw, p, "o", colour=_PROFILE_BLUE, ms=4, mew=1.0, scale=s, filled=True)
    for x, y in data["review"]:
        _marker(draw, ax.local(x, y, s), "o", colour=FLAG_COLOURS["review"], ms=5, mew=1.0,
                scale=s)  # fmt: skip
    for x, y in data["max"]:
        _marker(draw, ax.local(x, y, s), "^", colour=red, ms=8, mew=1.0, scale=s, filled=True)
    for x, y in data["reference"]:
        _marker(draw, ax.local(x, y, s), "s", colour="#000000", ms=7, mew=1.0, scale=s)

    entries = []
    if data["ok"]:
        entries.append(_LegendEntry("ok", _PROFILE_BLUE, ls="-", lw=1.5, marker="o", ms=4,
                                    filled=True))  # fmt: skip
    if data["review"]:
        entries.append(_LegendEntry("review (not used)", FLAG_COLOURS["review"], marker="o"))
    if data["max"]:
        entries.append(_LegendEntry(f"max {m.max_extrusion_mm:.1f} mm", red, marker="^", ms=8,
                                    filled=True))  # fmt: skip
    entries.append(_LegendEntry(f"{m.threshold_mm:g} mm", red, ls="--", lw=1.0))
    if data["reference"]:
        entries.append(_LegendEntry("reference slice", "#000000", marker="s", ms=7))
    font = _font(_px(7))
    fs = _font_px(font)
    # where the legend box covers the fewest data points and line samples (the
    # candidates and their order are those of matplotlib's loc="best")
    samples = [ax.local(x, y) for key in data for x, y in data[key]]
    for (xa, ya), (xb, yb) in zip(ok, ok[1:], strict=False):
        samples += [((xa + (xb - xa) * t / 8) / s, (ya + (yb - ya) * t / 8) / s)
                    for t in range(1, 8)]  # fmt: skip
    samples += [(ax.w * t / 40, ythr / s) for t in range(41)]
    best = None
    for corner in ("upper right", "upper left", "lower left", "lower right", "center right",
                   "center left", "lower center", "upper center", "center"):  # fmt: skip
        lbox, centres = _legend_layout(entries, font=font, corner=corner, area=(0, 0, ax.w, ax.h))
        hits = sum(lbox[0] - 6 <= x <= lbox[2] + 6 and lbox[1] - 6 <= y <= lbox[3] + 6
                   for x, y in samples)  # fmt: skip
        if best is None or hits < best[0]:
            best = (hits, lbox, centres)
    _, lbox, centres = best
    _draw_legend_graphics(draw, entries, lbox, centres, handle=2 * fs, offset=(0, 0), scale=s,
                          alpha=0.8)  # fmt: skip
    canvas.paste(layer.reduce(s), (ax.x0, ax.y0))

    cdraw = ImageDraw.Draw(canvas)
    _draw_legend_text(cdraw, entries, [(x + ax.x0, y + ax.y0) for x, y in centres], font=font,
                      handle=2 * fs, gap=round(0.8 * fs))  # fmt: skip
    cdraw.rectangle([ax.x0 - 1, ax.y0 - 1, ax.x0 + ax.w, ax.y0 + ax.h], outline="black", width=1)
    tick_font = _font(_px(8.5))
    tick_len = round(3.5 * _PT)
    step = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
    bottom = ax.y0 + ax.h
    for t in xticks:
        x = round(ax.canvas(t, 0.0)[0])
        cdraw.line([(x, bottom), (x, bottom + tick_len)], fill="black", width=1)
        _text(cdraw, (x, bottom + tick_len + 3), _tick_label(t, step), font=tick_font,
              anchor="ma")  # fmt: skip
    step = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    label_w = 0
    for t in yticks:
        y = round(ax.canvas(0.0, t)[1])
        cdraw.line([(ax.x0 - 1 - tick_len, y), (ax.x0 - 1, y)], fill="black", width=1)
        label = _tick_label(t, step)
        label_w = max(label_w, _text_size(label, tick_font)[0])
        _text(cdraw, (ax.x0 - tick_len - 4, y), label, font=tick_font, anchor="rm")
    label_font = _font(_px(9))
    _text(cdraw, (ax.x0 + ax.w / 2, bottom + tick_len + 6 + tick_font.size + 2),
          "instance number", font=label_font, anchor="ma")  # fmt: skip
    _vertical_text(canvas, (ax.x0 - tick_len - 10 - label_w, ax.y0 + ax.h // 2),
                   "extrusion (mm)", font=label_font)  # fmt: skip
    _text(cdraw, (ax.x0 + ax.w / 2, ax.y0 - round(6 * _PT)), "slice profile",
          font=_font(_px(9)), anchor="ms")  # fmt: skip


def _vertical_text(canvas: Image.Image, right_mid: tuple[float, float], text: str, *,
                   font: Font) -> None:  # fmt: skip
    """Text rotated by 90 degrees (reading upward), its right edge centred at ``right_mid``."""
    w, h = _text_size(text, font)
    asc, desc = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (h, 0)
    mask = Image.new("L", (w + 4, asc + desc + 2), 0)
    _text(ImageDraw.Draw(mask), (2, 1), text, font=font, fill=255, anchor="la")
    mask = mask.rotate(90, expand=True)
    x = round(right_mid[0] - mask.width)
    y = round(right_mid[1] - mask.height / 2)
    canvas.paste((0, 0, 0), (x, y, x + mask.width, y + mask.height), mask)


# ---------------------------------------------------------------- public API


def _panel_boxes(width: int, height: int, has_profile: bool) -> list[tuple[int, int, int, int]]:
    """Panel boxes ``(x0, y0, w, h)`` (canvas pixels) of the measurement PNG."""
    if has_profile:
        rects = ((0.01, 0.02, 0.31, 0.81), (0.335, 0.02, 0.31, 0.81), (0.7, 0.11, 0.28, 0.72))
    else:
        rects = ((0.015, 0.02, 0.47, 0.81), (0.515, 0.02, 0.47, 0.81))
    return [
        (round(left * width), round((1 - bottom - h) * height), round(w * width), round(h * height))
        for left, bottom, w, h in rects
    ]


def _title_lines(
    draw: ImageDraw.ImageDraw,
    centre_x: float,
    bottom: float,
    lines: list[str],
    *,
    font: Font,
    fill: str = "black",
) -> None:
    """Centred lines whose last baseline is at ``bottom``."""
    size = _font_px(font)
    step = round(1.2 * size)
    for i, line in enumerate(reversed(lines)):
        _text(draw, (centre_x, bottom - i * step), line, font=font, fill=fill, anchor="ms")


def render_measurement_png(
    image: np.ndarray,
    m: Measurement,
    path: Path,
    *,
    source_label: str = "",
) -> Path:
    """Draw the slice, a zoomed view of the measured compartment and the construction.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        The slice (or ultrasound frame) the landmarks refer to.
    m : Measurement
        The row; ``m.landmarks`` holds the points drawn. With more than one
        ``m.slice_profile`` entry a third panel shows the profile over the slices.
    path : Path
        PNG to write (RGB, 1716 x 638 pixels with the profile, else 1144 x 638);
        parent folders are created.
    source_label : str
        File / instance label shown in the header (no patient data).

    Returns
    -------
    Path
        ``path``.
    """
    canvas = draw_measurement(image, m, source_label=source_label)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG", **PNG_WRITE)
    return path


def draw_measurement(image: np.ndarray, m: Measurement, *, source_label: str = "") -> Image.Image:
    """The figure of :func:`render_measurement_png` as an RGB image (not written)."""
    row_mm = m.row_spacing_mm or 1.0
    col_mm = m.col_spacing_mm or 1.0
    rows, cols = image.shape[:2]
    has_profile = len(m.slice_profile) > 1
    width, height = (1716 if has_profile else 1144), 638
    canvas = Image.new("RGB", (width, height), "white")
    boxes = _panel_boxes(width, height, has_profile)
    gray = _gray8(image)
    seg = construction_segments(m, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
    flag_text, colour = _flag(m)

    zoom = zoom_box_px(m, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
    whole = (-0.5, rows - 0.5, -0.5, cols - 0.5)  # pixel edges of the image
    full = _fit_view(boxes[0], whole[:2], whole[2:], row_mm=row_mm, col_mm=col_mm)
    region = whole if zoom is None else zoom  # nothing to zoom on: the whole image
    zview = _fit_view(boxes[1], region[:2], region[2:], row_mm=row_mm, col_mm=col_mm)
    _image_panel(canvas, gray, full, seg=seg, lw=1.0, flag_colour=colour, zoom_rect=zoom)
    _side_labels(canvas, full, m)
    _image_panel(canvas, gray, zview, seg=seg, lw=1.6, flag_colour=colour,
                 legend=_construction_entries(seg, lw=1.6) or None)  # fmt: skip

    draw = ImageDraw.Draw(canvas)
    title_gap = round(6 * _PT)
    mme = "n/a" if m.extrusion_mm is None else f"{m.extrusion_mm:.1f} mm"
    _title_lines(draw, zview.x0 + zview.w / 2, zview.y0 - title_gap,
                 [f"MME {mme}  \u2014  {flag_text}"], font=_font(_px(11), bold=True),
                 fill=colour)  # fmt: skip
    width_txt = "" if m.meniscal_width_mm is None else f"   width {m.meniscal_width_mm:.1f} mm"
    rel = "" if m.relative_extrusion_pct is None else f"   rel. {m.relative_extrusion_pct:.0f} %"
    conf = "" if m.confidence is None else f"confidence {m.confidence:.2f}"
    if m.laterality:
        lat = f"{m.laterality} knee ({m.laterality_source})"
    else:
        lat = "knee side not recorded"
    _title_lines(draw, full.x0 + full.w / 2, full.y0 - title_gap,
                 [f"{m.modality} {m.side} side, {lat}", f"{conf}{width_txt}{rel}"],
                 font=_font(_px(9)))  # fmt: skip
    if has_profile:
        _profile_panel(canvas, m, boxes[2])

    spacing = f"{row_mm:.4g} x {col_mm:.4g} mm/px ({m.spacing_source})"
    where = f"instance {m.instance_number}" if m.instance_number is not None else ""
    if m.frame is not None:
        where += f" frame {m.frame}"
    _text(draw, (width / 2, round(0.015 * height)),
          f"kneemeasure {m.kneemeasure_version}   {source_label}   {where}   {spacing}   "
          f"method {m.method}   status {m.status}", font=_font(_px(7.5)), anchor="ma")  # fmt: skip
    return canvas


def warm_up() -> None:
    """Draw and encode a complete throw-away figure (in memory).

    The renderer process of ``kneemeasure measure`` calls this while the main
    process reads headers: fonts, glyph caches, resampling and the PNG encoder are
    then ready, and the real PNG takes ~0.07 s instead of ~0.12 s.
    """
    import io

    from kneemeasure.models import Landmarks

    yy, xx = np.mgrid[:96, :80]
    image = (np.hypot(yy - 48.0, xx - 40.0) < 30).astype(np.float32) * 100.0 + xx
    lm = Landmarks(plateau_rc=(50.0, 20.0), meniscus_rc=(46.0, 14.0), plateau_dir_rc=(0.1, -1.0),
                   meniscus_inner_rc=(47.0, 30.0), confidence=0.9)  # fmt: skip
    profile = [{"instance_number": k, "extrusion_mm": 1.0 + k, "status": s, "reference": k == 2}
               for k, s in ((1, "ok"), (2, "ok"), (3, "review"))]  # fmt: skip
    m = Measurement(source="warm-up", modality="MR", laterality="R", laterality_source="header",
                    extrusion_mm=2.0, meniscal_width_mm=8.0, relative_extrusion_pct=25.0,
                    extruded=False, max_extrusion_mm=3.0, max_extrusion_instance=2,
                    confidence=0.9, status="ok", row_spacing_mm=0.5, col_spacing_mm=0.5,
                    medial_image_side="image-left", instance_number=2, landmarks=lm,
                    slice_profile=profile)  # fmt: skip
    canvas = draw_measurement(image, m, source_label="warm-up")
    canvas.crop((0, 0, 64, 64)).save(io.BytesIO(), format="PNG", **PNG_WRITE)


def render_error_png(
    image: np.ndarray | None, message: str, path: Path, *, title: str = ""
) -> Path | None:
    """A PNG that says why an input could not be measured (only when there is an image).

    Parameters
    ----------
    image : ndarray, shape (rows, cols), or None
        The image shown (stretched to the panel); nothing is written when it is
        None, not 2-D or empty.
    message : str
        The reason, wrapped at 70 characters on a dark red box near the bottom.
    path : Path
        PNG to write (RGB, 600 x 640 pixels).
    title : str
        Red title above the image; ``"not measured"`` when empty.

    Returns
    -------
    Path or None
        ``path``, or None when no PNG was written.
    """
    if image is None or image.ndim != 2 or image.size == 0:
        return None
    width, height = 600, 640
    canvas = Image.new("RGB", (width, height), "white")
    rows, cols = image.shape
    x0, y0 = round(0.02 * width), round(0.08 * height)
    w, h = round(0.96 * width), round(0.9 * height)
    view = _View(x0, y0, w, h, row0=-0.5, col0=-0.5, sy=h / rows, sx=w / cols)  # aspect "auto"
    canvas.paste(_render_view(_gray8(image), view, 1), (x0, y0))
    draw = ImageDraw.Draw(canvas, "RGBA")
    draw.rectangle([x0 - 1, y0 - 1, x0 + w, y0 + h], outline="black", width=1)
    _text(draw, (x0 + w / 2, y0 - 8), title or "not measured",
          font=_font(15), fill=FLAG_COLOURS["extruded"], anchor="ms")  # fmt: skip
    font = _font(11)
    lines = textwrap.wrap(message, 70) or [""]
    step = 13
    pad = 4
    text_w = max(_text_size(line, font)[0] for line in lines)
    bottom = y0 + h - round(0.05 * h)
    top = bottom - len(lines) * step
    draw.rectangle([x0 + w / 2 - text_w / 2 - pad, top - pad, x0 + w / 2 + text_w / 2 + pad,
                    bottom + pad], fill=(160, 0, 0, 204))  # fmt: skip
    for i, line in enumerate(lines):
        _text(draw, (x0 + w / 2, top + i * step), line, font=font, fill="white", anchor="ma")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG", **PNG_WRITE)
    return path
