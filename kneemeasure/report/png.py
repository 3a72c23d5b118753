"""Annotated PNGs that show exactly what was measured (matplotlib, Agg canvas).

Inside this module only, plotting uses ``(x, y) = (col, row)``. Pixels are drawn
with ``aspect = row_spacing / col_spacing`` so anisotropic images look
anatomically right and perpendicular lines look perpendicular.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, not
through pyplot: no global figure state, no GUI backend, whatever backend the
caller uses. Panels sit at fixed positions (no tight layout pass, which would
cost a second rendering of the figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kneemeasure.measure import foot_on_line_px, perpendicular_line_px, unit
from kneemeasure.models import Measurement

#: zlib level 1: writing the PNG takes a third of the time of the default level 6
#: for a file about 25 % larger (still lossless).
PNG_WRITE = {"compress_level": 1}

FLAG_COLOURS = {"extruded": "#e8202a", "normal": "#2fbf4a", "review": "#ff9f1a"}


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


def _draw_construction(ax, m: Measurement, *, row_mm: float, col_mm: float, lw: float) -> None:
    lm = m.landmarks
    if lm is None:
        return
    _, colour = _flag(m)
    p = np.asarray(lm.plateau_rc, float)
    q = np.asarray(lm.meniscus_rc, float)
    u = unit(lm.plateau_dir_rc)
    if m.modality == "US":
        # reference line along the tibial cortex, extended across the gap;
        # perpendicular from the meniscus point to it.
        span = 25.0
        a = p - np.array([u[0] * span / row_mm, u[1] * span / col_mm])
        b = p + np.array([u[0] * span / row_mm, u[1] * span / col_mm])
        ax.plot([a[1], b[1]], [a[0], b[0]], "-", color="#33c3ff", lw=lw, label="reference line")
        f = foot_on_line_px(q, p, line_dir_rc=u, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
        ax.annotate(
            "",
            xy=(q[1], q[0]),
            xytext=(f[1], f[0]),
            arrowprops=dict(arrowstyle="<->", color=colour, lw=lw),
        )
    else:
        half = 12.0
        for point, style, name in ((p, "-", "tibial margin line"), (q, "--", "meniscus line")):
            a, b = perpendicular_line_px(
                point,
                plateau_dir_rc=u,
                half_length_mm=half,
                row_spacing_mm=row_mm,
                col_spacing_mm=col_mm,
            )
            ax.plot([a[1], b[1]], [a[0], b[0]], style, color="#33c3ff", lw=lw, label=name)
        # plateau direction through the margin
        t = np.array([u[0] * 15 / row_mm, u[1] * 15 / col_mm])
        ax.plot(
            [p[1] - t[1], p[1] + 0.4 * t[1]],
            [p[0] - t[0], p[0] + 0.4 * t[0]],
            ":",
            color="#ffe14d",
            lw=lw * 0.8,
            label="plateau direction",
        )
        # arrow between the two lines, parallel to the plateau, a little above the margin
        up = np.array([-u[1], u[0]])
        if up[0] > 0:  # point toward the femur (smaller row)
            up = -up
        off = np.array([up[0] * 6 / row_mm, up[1] * 6 / col_mm])
        a0 = p + off
        foot = foot_on_line_px(q, p, line_dir_rc=u, row_spacing_mm=row_mm, col_spacing_mm=col_mm)
        a1 = foot + off
        ax.annotate(
            "",
            xy=(a1[1], a1[0]),
            xytext=(a0[1], a0[0]),
            arrowprops=dict(arrowstyle="<->", color=colour, lw=lw),
        )
    ax.plot(p[1], p[0], "o", ms=5, mfc="none", mec="#ffe14d", mew=1.5, label="tibial margin")
    ax.plot(q[1], q[0], "x", ms=7, color="#ff4df5", mew=1.8, label="meniscal edge")
    if lm.meniscus_inner_rc is not None:
        r = lm.meniscus_inner_rc
        ax.plot(r[1], r[0], "+", ms=7, color="#ff4df5", mew=1.2, label="meniscal apex")


def _side_labels(ax, m: Measurement, cols: int) -> None:
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
        The row; ``m.landmarks`` holds the points drawn.
    path : Path
        PNG to write.
    source_label : str
        File / instance label shown in the header (no patient data).
    """
    row_mm = m.row_spacing_mm or 1.0
    col_mm = m.col_spacing_mm or 1.0
    aspect = row_mm / col_mm
    vmin, vmax = window(image)
    has_profile = len(m.slice_profile) > 1
    ncols = 3 if has_profile else 2
    fig = Figure(figsize=(5.2 * ncols, 5.8), dpi=110)
    FigureCanvasAgg(fig)
    # [left, bottom, width, height] in figure fractions; titles above, suptitle on top
    if has_profile:
        rects = ([0.01, 0.02, 0.31, 0.81], [0.335, 0.02, 0.31, 0.81], [0.7, 0.11, 0.28, 0.72])
    else:
        rects = ([0.015, 0.02, 0.47, 0.81], [0.515, 0.02, 0.47, 0.81])
    axes = [fig.add_axes(r) for r in rects]
    ax_full, ax_zoom = axes[0], axes[1]
    for ax in (ax_full, ax_zoom):
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="bilinear")
        ax.set_xticks([])
        ax.set_yticks([])
    _draw_construction(ax_full, m, row_mm=row_mm, col_mm=col_mm, lw=1.0)
    _draw_construction(ax_zoom, m, row_mm=row_mm, col_mm=col_mm, lw=1.6)
    _side_labels(ax_full, m, image.shape[1])
    if m.landmarks is not None:
        c = (np.asarray(m.landmarks.plateau_rc) + np.asarray(m.landmarks.meniscus_rc)) / 2
        half = 10.0 if m.modality == "US" else 20.0
        half_r, half_c = half / row_mm, half / col_mm
        ax_zoom.set_xlim(c[1] - half_c, c[1] + half_c)
        ax_zoom.set_ylim(c[0] + half_r, c[0] - half_r)
        ax_full.add_patch(
            Rectangle(
                (c[1] - half_c, c[0] - half_r),
                2 * half_c,
                2 * half_r,
                fill=False,
                ec="#33c3ff",
                lw=0.8,
                ls=":",
            )
        )
        ax_zoom.legend(loc="lower left", fontsize=6.5, framealpha=0.6)
    ax_full.set_xlim(-0.5, image.shape[1] - 0.5)
    ax_full.set_ylim(image.shape[0] - 0.5, -0.5)
    flag_text, colour = _flag(m)
    mme = "n/a" if m.extrusion_mm is None else f"{m.extrusion_mm:.1f} mm"
    ax_zoom.set_title(f"MME {mme}  —  {flag_text}", color=colour, fontsize=11, fontweight="bold")
    width = "" if m.meniscal_width_mm is None else f"   width {m.meniscal_width_mm:.1f} mm"
    rel = "" if m.relative_extrusion_pct is None else f"   rel. {m.relative_extrusion_pct:.0f} %"
    conf = "" if m.confidence is None else f"confidence {m.confidence:.2f}"
    if m.laterality:
        lat = f"{m.laterality} knee ({m.laterality_source})"
    else:
        lat = "knee side not recorded"
    ax_full.set_title(f"{m.modality} {m.side} side, {lat}\n{conf}{width}{rel}", fontsize=9)
    if has_profile:
        ax_p = axes[2]
        prof = [r for r in m.slice_profile if r.get("extrusion_mm") is not None]
        ok = [r for r in prof if r.get("status") == "ok"]
        rv = [r for r in prof if r.get("status") != "ok"]
        ax_p.plot(
            [r["instance_number"] for r in ok],
            [r["extrusion_mm"] for r in ok],
            "o-",
            color="#3366cc",
            ms=4,
            label="ok",
        )
        if rv:
            ax_p.plot(
                [r["instance_number"] for r in rv],
                [r["extrusion_mm"] for r in rv],
                "o",
                mfc="none",
                mec=FLAG_COLOURS["review"],
                ms=5,
                label="review (not used)",
            )
        if m.max_extrusion_mm is not None:
            ax_p.plot(
                [m.max_extrusion_instance],
                [m.max_extrusion_mm],
                "^",
                color="#e8202a",
                ms=8,
                label=f"max {m.max_extrusion_mm:.1f} mm",
            )
        ax_p.axhline(
            m.threshold_mm,
            color=FLAG_COLOURS["extruded"],
            ls="--",
            lw=1,
            label=f"{m.threshold_mm:g} mm",
        )
        if m.instance_number is not None and m.extrusion_mm is not None:
            ax_p.plot(
                [m.instance_number],
                [m.extrusion_mm],
                "s",
                color="k",
                ms=7,
                mfc="none",
                label="reference slice",
            )
        ax_p.set_xlabel("instance number")
        ax_p.set_ylabel("extrusion (mm)")
        ax_p.set_title("slice profile", fontsize=9)
        ax_p.grid(alpha=0.3)
        ax_p.legend(fontsize=7)
    spacing = f"{row_mm:.4g} x {col_mm:.4g} mm/px ({m.spacing_source})"
    where = f"instance {m.instance_number}" if m.instance_number is not None else ""
    if m.frame is not None:
        where += f" frame {m.frame}"
    fig.suptitle(
        f"kneemeasure {m.kneemeasure_version}   {source_label}   {where}   {spacing}   "
        f"method {m.method}   status {m.status}",
        fontsize=7.5,
        y=0.985,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, pil_kwargs=PNG_WRITE)
    return path


def warm_up() -> None:
    """Draw a small throw-away figure with the artists the PNGs use.

    The first figure of a process loads the fonts and builds matplotlib's caches
    (~0.1 s); the renderer process of ``kneemeasure measure`` calls this while the
    measurement runs, so the real PNG does not wait for it.
    """
    import io

    fig = Figure(figsize=(3, 2), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.1, 0.1, 0.8, 0.7])
    ax.imshow(np.zeros((8, 8)), cmap="gray", interpolation="bilinear")
    ax.plot([0, 4], [0, 4], "o-", label="a")
    ax.annotate("", xy=(4, 4), xytext=(0, 0), arrowprops=dict(arrowstyle="<->"))
    ax.text(0.5, 0.5, "MEDIAL", transform=ax.transAxes, fontweight="bold",
            bbox=dict(facecolor="black", alpha=0.6, lw=0))  # fmt: skip
    ax.axhline(1.0, ls="--")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("MME", fontweight="bold")
    ax.set_xlabel("instance number")
    fig.suptitle("kneemeasure", fontsize=7.5)
    fig.savefig(io.BytesIO(), format="png", pil_kwargs=PNG_WRITE)


def render_error_png(
    image: np.ndarray | None, message: str, path: Path, *, title: str = ""
) -> Path | None:
    """A PNG that says why an input could not be measured (only when there is an image)."""
    if image is None or image.ndim != 2 or image.size == 0:
        return None
    vmin, vmax = window(image)
    fig = Figure(figsize=(6, 6.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.9])
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "not measured", color=FLAG_COLOURS["extruded"], fontsize=11)
    import textwrap

    ax.text(
        0.5,
        0.05,
        "\n".join(textwrap.wrap(message, 70)),
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        color="w",
        fontsize=8,
        bbox=dict(facecolor="#a00000", alpha=0.8, lw=0),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, pil_kwargs=PNG_WRITE)
    return path
