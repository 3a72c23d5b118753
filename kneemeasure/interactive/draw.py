"""The measurement construction drawn on matplotlib axes (interactive window).

The geometry comes from :func:`kneemeasure.report.construction.construction_segments`
and the styles from :data:`~kneemeasure.report.construction.STYLES`, the same ones
the Pillow PNG renderer uses, so the window and the PNG show the same lines.
Inside this module only, plotting uses ``(x, y) = (col, row)``.
"""

from __future__ import annotations

from matplotlib.axes import Axes

from kneemeasure.models import Measurement
from kneemeasure.report.construction import STYLES, construction_segments, side_labels
from kneemeasure.report.png import _flag


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
    _, flag_colour = _flag(m)
    for name, pts in seg.items():
        st = STYLES[name]
        colour = st["colour"] or flag_colour
        if st["kind"] == "line":
            (r0, c0), (r1, c1) = pts
            ax.plot([c0, c1], [r0, r1], st["ls"], color=colour, lw=lw * st["lw"], label=name)
        elif st["kind"] == "arrow":
            (r0, c0), (r1, c1) = pts
            ax.annotate(
                "",
                xy=(c1, r1),
                xytext=(c0, r0),
                arrowprops=dict(arrowstyle="<->", color=colour, lw=lw * st["lw"]),
            )
        elif st["marker"] == "o":
            ax.plot(pts[1], pts[0], "o", ms=st["ms"], mfc="none", mec=colour, mew=st["mew"],
                    label=name)  # fmt: skip
        else:
            ax.plot(pts[1], pts[0], st["marker"], ms=st["ms"], color=colour, mew=st["mew"],
                    label=name)  # fmt: skip


def _side_labels(ax: Axes, m: Measurement, cols: int = 0) -> None:
    """MEDIAL / LATERAL labels in the top corners of ``ax`` (``m.medial_image_side``)."""
    labels = side_labels(m)
    if labels is None:
        return
    left, right = labels
    kw = dict(
        color="w",
        fontsize=8,
        fontweight="bold",
        va="top",
        bbox=dict(facecolor="black", alpha=0.6, lw=0),
    )
    ax.text(0.01, 0.99, left, transform=ax.transAxes, ha="left", **kw)
    ax.text(0.99, 0.99, right, transform=ax.transAxes, ha="right", **kw)
