"""The measurement construction drawn on matplotlib axes (interactive window).

The geometry comes from :func:`kneemeasure.report.construction.construction_segments`,
the same function the Pillow PNG renderer uses, so the window and the PNG show
the same lines. Inside this module only, plotting uses ``(x, y) = (col, row)``.
"""

from __future__ import annotations

from matplotlib.axes import Axes

from kneemeasure.models import Measurement
from kneemeasure.report.construction import construction_segments
from kneemeasure.report.png import _flag

_LINE_STYLE = {
    "reference line": ("-", 1.0),
    "tibial margin line": ("-", 1.0),
    "meniscus line": ("--", 1.0),
}


def _draw_construction(
    ax: Axes, m: Measurement, *, row_mm: float, col_mm: float, lw: float
) -> None:
    """Draw the construction of ``m`` on ``ax`` (lines, arrow, landmark markers).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes showing the image with ``imshow`` (data coordinates = pixels).
    m : Measurement
        The row; nothing is drawn when ``m.landmarks`` is None.
    row_mm, col_mm : float
        Pixel spacing (mm) used for the perpendiculars.
    lw : float
        Line width (points) of the lines and the arrow.
    """
    seg = construction_segments(m, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
    if not seg:
        return
    _, colour = _flag(m)
    for name, (style, scale) in _LINE_STYLE.items():
        if name in seg:
            (r0, c0), (r1, c1) = seg[name]
            ax.plot([c0, c1], [r0, r1], style, color="#33c3ff", lw=lw * scale, label=name)
    if "plateau direction" in seg:
        (r0, c0), (r1, c1) = seg["plateau direction"]
        ax.plot(
            [c0, c1], [r0, r1], ":", color="#ffe14d", lw=lw * 0.8, label="plateau direction"
        )
    (r0, c0), (r1, c1) = seg["arrow"]
    ax.annotate(
        "",
        xy=(c1, r1),
        xytext=(c0, r0),
        arrowprops=dict(arrowstyle="<->", color=colour, lw=lw),
    )
    p, q = seg["tibial margin"], seg["meniscal edge"]
    ax.plot(p[1], p[0], "o", ms=5, mfc="none", mec="#ffe14d", mew=1.5, label="tibial margin")
    ax.plot(q[1], q[0], "x", ms=7, color="#ff4df5", mew=1.8, label="meniscal edge")
    if "meniscal apex" in seg:
        r = seg["meniscal apex"]
        ax.plot(r[1], r[0], "+", ms=7, color="#ff4df5", mew=1.2, label="meniscal apex")


def _side_labels(ax: Axes, m: Measurement, cols: int = 0) -> None:
    """MEDIAL / LATERAL labels in the top corners of ``ax`` (``m.medial_image_side``)."""
    if m.medial_image_side not in ("image-left", "image-right"):
        return
    left = "MEDIAL" if m.medial_image_side == "image-left" else "LATERAL"
    right = "LATERAL" if left == "MEDIAL" else "MEDIAL"
    kw = dict(
        color="w",
        fontsize=8,
        fontweight="bold",
        va="top",
        bbox=dict(facecolor="black", alpha=0.6, lw=0),
    )
    ax.text(0.01, 0.99, left, transform=ax.transAxes, ha="left", **kw)
    ax.text(0.99, 0.99, right, transform=ax.transAxes, ha="right", **kw)
