"""Backend-independent controller of the interactive measurement window.

The controller owns the state (slice, landmarks, window/level, zoom) and handles
matplotlib events; it works on any figure, including an Agg figure driven by
synthetic :class:`~matplotlib.backend_bases.MouseEvent` /
:class:`~matplotlib.backend_bases.KeyEvent` objects in tests. Opening a real
window is :mod:`kneemeasure.interactive.window`'s job.

Inside this module only, plotting uses ``(x, y) = (col, row)``; the state
holds ``(row, col)`` pixels like the rest of kneemeasure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from kneemeasure.errors import KneeMeasureError
from kneemeasure.interactive.draw import _draw_construction, _side_labels
from kneemeasure.interactive.points import (
    COORD_DECIMALS,
    ManualPoints,
    landmarks_from_points,
    measure_from_points,
)
from kneemeasure.measure import measure_construction, to_px, unit
from kneemeasure.models import Landmarks, Measurement
from kneemeasure.report.png import _flag, window

#: The keys, as shown on screen (and in docs/interactive.md).
KEY_LEGEND: tuple[tuple[str, str], ...] = (
    ("drag", "move a marker (o margin, x meniscus, \u25c7 plateau direction)"),
    ("1 / 2 / 3 + click", "place margin / meniscal edge / plateau-direction point"),
    ("scroll, \u2191 \u2193, PgUp PgDn", "previous / next slice"),
    ("+ / \u2212, z", "zoom in / out at the cursor, zoom to compartment / full"),
    ("middle-drag", "pan"),
    ("right-drag, w", "window / level, reset window"),
    ("a or Enter", "accept (write outputs)"),
    ("s or Esc", "skip (keep the automatic result)"),
    ("r / c", "reset to automatic / clear and click again"),
    ("h", "hide / show this legend"),
)

PROMPTS = {
    "plateau": "click the TIBIAL MARGIN (cortex meets plateau, ignore osteophytes)",
    "meniscus": "click the OUTER EDGE of the meniscal body",
    "surface": "click a point on the PLATEAU SURFACE (sets the plateau direction)",
}
LABELS = {"plateau": "tibial margin", "meniscus": "meniscal edge", "surface": "plateau direction"}
ORDER = ("plateau", "meniscus")
PICK_RADIUS_PX = 12.0
HANDLE_MM = 10.0


@dataclass
class SessionResult:
    """What the user decided in one session.

    Attributes
    ----------
    action : {"accept", "skip"}
    index : int
        Slice index (position in the series) shown when the session ended.
    method : str
        ``"auto"`` (automatic landmarks accepted unchanged), ``"auto+corrected"``
        or ``"manual"``; ``""`` on skip.
    points : ManualPoints or None
        The accepted points (rounded to 1/1000 pixel), ``None`` on skip.
    landmarks : Landmarks or None
        The landmarks measured from ``points`` (plateau direction decided as in
        :func:`~kneemeasure.interactive.points.landmarks_from_points`).
    """

    action: str
    index: int
    method: str = ""
    points: ManualPoints | None = None
    landmarks: Landmarks | None = None


class MeasureController:
    """State and event handling of one interactive measurement (one series, one side).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        An empty figure; the controller adds its axes and connects its handlers.
    volume : ndarray, shape (n_slices, rows, cols)
        The slices of the series, ordered along the slice normal.
    index : int
        Slice shown first (the automatic or ``--slice`` one).
    row_spacing_mm, col_spacing_mm : float
        Pixel spacing (mm).
    outer_col_sign : {+1, -1}
        +1 when the measured compartment's outer edge is toward increasing column.
    auto : Landmarks, optional
        Automatic landmarks on ``index``; ``None`` (detection failed, ``--no-auto``)
        starts with click prompts.
    detect : callable, optional
        ``detect(index) -> Landmarks or None``: automatic landmarks of another
        slice (for reset, the plateau direction and the meniscal width); ``None``
        disables detection (``--no-auto``).
    instance_numbers : sequence of int or None, optional
        Instance Number of each slice, for the labels.
    threshold_mm : float
        ``extruded = MME >= threshold_mm``.
    side : str
        ``"medial"`` or ``"lateral"`` (labels only).
    medial_image_side : str
        ``"image-left"`` / ``"image-right"``, for the MEDIAL / LATERAL labels.
    title : str
        Shown above the image (no patient data).
    on_done : callable, optional
        Called with the :class:`SessionResult` on accept / skip (the window closes the figure).
    """

    def __init__(
        self,
        fig: Figure,
        volume: np.ndarray,
        *,
        index: int,
        row_spacing_mm: float,
        col_spacing_mm: float,
        outer_col_sign: int,
        auto: Landmarks | None = None,
        detect: Callable[[int], Landmarks | None] | None = None,
        instance_numbers: Sequence[int | None] | None = None,
        threshold_mm: float = 3.0,
        side: str = "medial",
        medial_image_side: str = "",
        title: str = "",
        on_done: Callable[[SessionResult], None] | None = None,
    ) -> None:
        if volume.ndim == 2:
            volume = volume[None]
        if volume.ndim != 3:
            raise KneeMeasureError(f"volume must be (n, rows, cols), got shape {volume.shape}")
        self.fig = fig
        self.volume = volume
        self.index = int(index)
        self.rs, self.cs = float(row_spacing_mm), float(col_spacing_mm)
        self.outer = int(outer_col_sign)
        self.threshold_mm = float(threshold_mm)
        self.side = side
        self.medial_image_side = medial_image_side
        self.title = title
        self.on_done = on_done
        self.instance_numbers = list(instance_numbers or [None] * volume.shape[0])
        self._detect_fn = detect
        self._detected: dict[int, Landmarks | None] = {}
        self.auto_index = self.index
        self.auto = auto
        if auto is not None:
            self._detected[self.index] = auto
        self.started_auto = auto is not None
        self.result: SessionResult | None = None
        self.message = ""
        self.show_legend = True

        # landmark state (row, col) pixels; "surface" is the plateau-direction point,
        # fixed only once the user places or drags it.
        self.pts: dict[str, np.ndarray | None] = {"plateau": None, "meniscus": None}
        self.surface: np.ndarray | None = None
        self.active: str | None = None
        self.modified = False
        self._drag: str | None = None
        self._wl_drag: tuple[float, float, float, float] | None = None
        self._pan_drag: tuple | None = None
        self._dynamic: list = []

        self.ax = fig.add_axes((0.02, 0.17, 0.96, 0.74))
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.vmin, self.vmax = window(self.volume[self.index])
        self.image_artist = self.ax.imshow(
            self.volume[self.index],
            cmap="gray",
            vmin=self.vmin,
            vmax=self.vmax,
            aspect=self.rs / self.cs,
            interpolation="bilinear",
        )
        # one-line cursor read-out in (row, col): a two-line toolbar message would
        # resize the canvas (TkAgg) and move the image under the mouse
        self.image_artist.get_cursor_data = lambda event: None
        self.ax.format_coord = self._format_coord
        self.full_limits = (self.ax.get_xlim(), self.ax.get_ylim())
        self.title_artist = self.ax.set_title("", fontsize=11, fontweight="bold")
        self.status_artist = fig.text(0.5, 0.965, "", ha="center", va="center", fontsize=8.5)
        self.prompt_artist = self.ax.text(
            0.5,
            0.03,
            "",
            transform=self.ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=10,
            color="k",
            bbox=dict(facecolor="#ffe14d", alpha=0.9, lw=0),
        )
        legend = "\n".join(f"{k:>26}   {v}" for k, v in KEY_LEGEND)
        self.legend_artist = fig.text(
            0.02, 0.01, legend, ha="left", va="bottom", fontsize=7.2, family="monospace"
        )
        self._cids = [
            fig.canvas.mpl_connect("button_press_event", self.on_press),
            fig.canvas.mpl_connect("motion_notify_event", self.on_motion),
            fig.canvas.mpl_connect("button_release_event", self.on_release),
            fig.canvas.mpl_connect("scroll_event", self.on_scroll),
            fig.canvas.mpl_connect("key_press_event", self.on_key),
        ]
        if auto is not None:
            self._set_from_landmarks(auto)
        else:
            self.active = "plateau"
        self.redraw()

    # ------------------------------------------------------------------ state

    def detected(self, index: int) -> Landmarks | None:
        """Automatic landmarks of slice ``index`` (cached; ``None`` when unavailable)."""
        if self._detect_fn is None:
            return self._detected.get(index) if index == self.auto_index else None
        if index not in self._detected:
            try:
                self._detected[index] = self._detect_fn(index)
            except KneeMeasureError as exc:
                self._detected[index] = None
                self.message = f"no automatic landmarks on this slice ({exc.message})"
        return self._detected[index]

    def _set_from_landmarks(self, lm: Landmarks) -> None:
        self.pts = {
            "plateau": np.asarray(lm.plateau_rc, float),
            "meniscus": np.asarray(lm.meniscus_rc, float),
        }
        self.surface = None
        self.active = None

    def current_points(self) -> ManualPoints | None:
        """The landmarks as :class:`ManualPoints` (``None`` until margin and meniscus exist)."""
        p, q = self.pts["plateau"], self.pts["meniscus"]
        if p is None or q is None:
            return None
        surface = None
        if self.surface is not None:
            surface = (tuple(float(v) for v in self.surface), tuple(float(v) for v in p))
        return ManualPoints(
            plateau_rc=(float(p[0]), float(p[1])),
            meniscus_rc=(float(q[0]), float(q[1])),
            surface_rc=surface,
            instance_number=self.instance_numbers[self.index],
        )

    def current_landmarks(self) -> Landmarks | None:
        """Landmarks as they would be measured now (``None`` while points are missing)."""
        mp = self.current_points()
        if mp is None:
            return None
        try:
            return landmarks_from_points(
                mp,
                row_spacing_mm=self.rs,
                col_spacing_mm=self.cs,
                outer_col_sign=self.outer,
                detected=self.detected(self.index),
            )
        except KneeMeasureError as exc:  # e.g. direction point dropped on the margin
            self.message = exc.message
            self.surface = None
            mp.surface_rc = None
            return landmarks_from_points(
                mp,
                row_spacing_mm=self.rs,
                col_spacing_mm=self.cs,
                outer_col_sign=self.outer,
                detected=self.detected(self.index),
            )

    def direction_handle(self, lm: Landmarks | None = None) -> np.ndarray | None:
        """Position (pixels) of the plateau-direction marker."""
        if self.surface is not None:
            return self.surface
        lm = lm or self.current_landmarks()
        if lm is None:
            return None
        u = unit(lm.plateau_dir_rc)
        step = to_px(-u * HANDLE_MM, row_spacing_mm=self.rs, col_spacing_mm=self.cs)
        return np.asarray(lm.plateau_rc, float) + step

    def method(self) -> str:
        """``"auto"``, ``"auto+corrected"`` or ``"manual"`` for the current state."""
        if not self.started_auto:
            return "manual"
        if self.modified or self.index != self.auto_index or self.surface is not None:
            return "auto+corrected"
        return "auto"

    def measurement(self) -> Measurement | None:
        """A :class:`Measurement` of the current state (for drawing), ``None`` while incomplete."""
        lm = self.current_landmarks()
        if lm is None:
            return None
        r = measure_construction(
            lm.plateau_rc,
            lm.meniscus_rc,
            plateau_dir_rc=lm.plateau_dir_rc,
            meniscus_inner_rc=lm.meniscus_inner_rc,
            row_spacing_mm=self.rs,
            col_spacing_mm=self.cs,
            threshold_mm=self.threshold_mm,
        )
        return Measurement(
            source="",
            modality="MR",
            side=self.side,
            extrusion_mm=r.extrusion_mm,
            meniscal_width_mm=r.meniscal_width_mm,
            relative_extrusion_pct=r.relative_extrusion_pct,
            extruded=r.extruded,
            threshold_mm=self.threshold_mm,
            status="ok",
            method=self.method(),
            plateau_direction_source=lm.plateau_direction_source,
            row_spacing_mm=self.rs,
            col_spacing_mm=self.cs,
            medial_image_side=self.medial_image_side,
            instance_number=self.instance_numbers[self.index],
            landmarks=lm,
        )

    # ------------------------------------------------------------------ drawing

    def redraw(self) -> None:
        """Redraw the construction, the MME value and flag, the prompt and the labels."""
        for artist in self._dynamic:
            artist.remove()
        self._dynamic = []
        before = set(self.ax.lines) | set(self.ax.texts) | set(self.ax.patches)
        before |= set(self.ax.artists) | set(self.ax.collections)
        m = self.measurement()
        if m is not None:
            _draw_construction(self.ax, m, row_mm=self.rs, col_mm=self.cs, lw=1.4)
            h = self.direction_handle(m.landmarks)
            self.ax.plot(
                [h[1], m.landmarks.plateau_rc[1]],
                [h[0], m.landmarks.plateau_rc[0]],
                "-",
                color="#ffe14d",
                lw=0.6,
                alpha=0.7,
            )
            self.ax.plot(h[1], h[0], "D", ms=6, mfc="none", mec="#ffe14d", mew=1.4)
            text, colour = _flag(m)
            self.title_artist.set_text(f"MME {m.extrusion_mm:.1f} mm  \u2014  {text}")
            self.title_artist.set_color(colour)
        else:
            for name in ORDER:
                p = self.pts[name]
                if p is not None:
                    style = "o" if name == "plateau" else "x"
                    self.ax.plot(p[1], p[0], style, ms=7, mfc="none", color="#ffe14d", mew=1.6)
            self.title_artist.set_text("MME \u2014 place the landmarks")
            self.title_artist.set_color("k")
        if self.active is not None:
            p = self._active_position()
            if p is not None:
                self.ax.plot(p[1], p[0], "s", ms=14, mfc="none", mec="#33c3ff", mew=1.2)
        _side_labels(self.ax, Measurement(source="", medial_image_side=self.medial_image_side), 0)
        after = set(self.ax.lines) | set(self.ax.texts) | set(self.ax.patches)
        after |= set(self.ax.artists) | set(self.ax.collections)
        self._dynamic = [a for a in after - before if a is not self.prompt_artist]

        n = self.volume.shape[0]
        inst = self.instance_numbers[self.index]
        src = m.plateau_direction_source if m is not None else "-"
        method = self.method() if m is not None else "-"
        self.status_artist.set_text(
            f"{self.title}   {self.side} side   slice {self.index + 1}/{n}"
            + (f" (instance {inst})" if inst is not None else "")
            + (" [automatic slice]" if self.index == self.auto_index else "")
            + f"   method {method}   plateau direction {src}"
        )
        prompt = ""
        if self.active is not None:
            step = ""
            if self.active in ORDER and any(self.pts[k] is None for k in ORDER):
                step = f"step {ORDER.index(self.active) + 1}/2: "
            prompt = step + PROMPTS[self.active]
        elif m is not None and not self.started_auto and self.surface is None:
            prompt = "optional: press 3 and click the plateau surface;  a = accept"
        if self.message:
            prompt = (prompt + "\n" if prompt else "") + self.message
        self.prompt_artist.set_text(prompt)
        self.prompt_artist.set_visible(bool(prompt))
        self.legend_artist.set_visible(self.show_legend)
        self.fig.canvas.draw_idle()

    def _format_coord(self, x: float, y: float) -> str:
        r, c = int(round(y)), int(round(x))
        img = self.volume[self.index]
        inside = 0 <= r < img.shape[0] and 0 <= c < img.shape[1]
        value = f"  value {img[r, c]:.0f}" if inside else ""
        return f"row {y:.1f}  col {x:.1f}{value}"

    def _active_position(self) -> np.ndarray | None:
        if self.active == "surface":
            return self.direction_handle()
        return self.pts.get(self.active) if self.active else None

    # ------------------------------------------------------------------ actions

    def _place(self, name: str, row: float, col: float) -> None:
        rows, cols = self.volume.shape[1:]
        row = float(np.clip(row, -0.5, rows - 0.5))
        col = float(np.clip(col, -0.5, cols - 0.5))
        if name == "surface":
            if self.pts["plateau"] is None:
                self.message = "place the tibial margin first"
                return
            self.surface = np.array([row, col])
        else:
            self.pts[name] = np.array([row, col])
        self.modified = True
        self.message = ""

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (clipped to the series); the landmarks stay where they are."""
        index = int(np.clip(index, 0, self.volume.shape[0] - 1))
        if index == self.index:
            return
        self.index = index
        self.message = ""
        self.image_artist.set_data(self.volume[index])
        self.redraw()

    def reset(self) -> None:
        """Automatic landmarks of the current slice; click prompts when there are none."""
        lm = self.detected(self.index)
        self.surface = None
        if lm is not None:
            self._set_from_landmarks(lm)
            self.modified = self.index != self.auto_index
            self.message = ""
        else:
            self.clear()
            if self._detect_fn is None:
                self.message = "no automatic landmarks (--no-auto or detection failed)"
        self.redraw()

    def clear(self) -> None:
        """Forget the landmarks and ask for the clicks again."""
        self.pts = {"plateau": None, "meniscus": None}
        self.surface = None
        self.active = "plateau"
        self.modified = True

    def accept(self) -> SessionResult | None:
        """Finish with the current landmarks (``None`` and a message while incomplete)."""
        mp = self.current_points()
        if mp is None:
            self.message = "place the tibial margin and the meniscal edge before accepting"
            self.redraw()
            return None
        method = self.method()
        # round to the grid a corrections file stores, so that a replay is identical
        rnd = lambda p: (round(p[0], COORD_DECIMALS), round(p[1], COORD_DECIMALS))  # noqa: E731
        mp.plateau_rc, mp.meniscus_rc = rnd(mp.plateau_rc), rnd(mp.meniscus_rc)
        if mp.surface_rc is not None:
            mp.surface_rc = (rnd(mp.surface_rc[0]), rnd(mp.surface_rc[1]))
        mp.method = method if method != "auto" else "auto+corrected"
        detected = self.detected(self.index)
        # record what the direction and the width came from, so a replay needs no flags
        mp.inner_from_detection = False
        if detected is not None and detected.meniscus_inner_rc is not None:
            mp.meniscus_inner_rc = rnd(detected.meniscus_inner_rc)
        lm, _ = measure_from_points(
            mp,
            row_spacing_mm=self.rs,
            col_spacing_mm=self.cs,
            outer_col_sign=self.outer,
            detected=detected,
        )
        mp.direction_source = lm.plateau_direction_source
        self._finish(SessionResult("accept", self.index, method, mp, lm))
        return self.result

    def skip(self) -> SessionResult:
        """Finish without a correction."""
        self._finish(SessionResult("skip", self.index))
        return self.result

    def _finish(self, result: SessionResult) -> None:
        self.result = result
        for cid in self._cids:
            self.fig.canvas.mpl_disconnect(cid)
        if self.on_done is not None:
            self.on_done(result)

    def zoom(self, factor: float, center_rc: tuple[float, float] | None = None) -> None:
        """Zoom by ``factor`` (> 1 zooms in) around ``center_rc`` (default: view centre)."""
        x0, x1 = self.ax.get_xlim()
        y0, y1 = self.ax.get_ylim()
        if center_rc is None:
            center_rc = ((y0 + y1) / 2, (x0 + x1) / 2)
        cr, cc = center_rc
        self.ax.set_xlim(cc + (x0 - cc) / factor, cc + (x1 - cc) / factor)
        self.ax.set_ylim(cr + (y0 - cr) / factor, cr + (y1 - cr) / factor)
        self.fig.canvas.draw_idle()

    def toggle_compartment_zoom(self) -> None:
        """Zoom to 44 mm around the landmarks, or back to the whole slice."""
        view = np.r_[self.ax.get_xlim(), self.ax.get_ylim()]
        if not np.allclose(view, np.r_[self.full_limits[0], self.full_limits[1]], atol=1e-3):
            self.ax.set_xlim(*self.full_limits[0])
            self.ax.set_ylim(*self.full_limits[1])
        else:
            pts = [p for p in self.pts.values() if p is not None]
            if not pts:
                return
            c = np.mean(pts, axis=0)
            hr, hc = 22.0 / self.rs, 22.0 / self.cs
            self.ax.set_xlim(c[1] - hc, c[1] + hc)
            self.ax.set_ylim(c[0] + hr, c[0] - hr)
        self.fig.canvas.draw_idle()

    def set_window(self, vmin: float, vmax: float) -> None:
        """Display window in image intensity units."""
        if vmax <= vmin:
            vmax = vmin + 1e-6
        self.vmin, self.vmax = float(vmin), float(vmax)
        self.image_artist.set_clim(self.vmin, self.vmax)
        self.fig.canvas.draw_idle()

    # ------------------------------------------------------------------ events

    def _toolbar_busy(self) -> bool:
        toolbar = getattr(self.fig.canvas, "toolbar", None)
        return bool(toolbar is not None and getattr(toolbar, "mode", ""))

    def _hit(self, event) -> str | None:
        """The marker under the mouse (within PICK_RADIUS_PX display pixels)."""
        cands = {k: v for k, v in self.pts.items() if v is not None}
        h = self.direction_handle() if self.pts["plateau"] is not None else None
        if h is not None and self.pts["meniscus"] is not None:
            cands["surface"] = h
        best, best_d = None, PICK_RADIUS_PX
        for name, p in cands.items():
            x, y = self.ax.transData.transform((p[1], p[0]))
            d = float(np.hypot(x - event.x, y - event.y))
            if d <= best_d:
                best, best_d = name, d
        return best

    def on_press(self, event) -> None:
        if self.result is not None or event.inaxes is not self.ax or self._toolbar_busy():
            return
        if event.xdata is None or event.ydata is None:
            return
        if event.button == 1:
            hit = self._hit(event)
            if hit is not None and self.active is None:
                self._drag = hit
                return
            if self.active is not None:
                name = self.active
                self._place(name, event.ydata, event.xdata)
                missing = [k for k in ORDER if self.pts[k] is None]
                self.active = missing[0] if missing else None
                self.redraw()
            elif hit is None:
                self.message = "drag a marker, or press 1 / 2 / 3 and click to place one"
                self.redraw()
        elif event.button == 3:
            self._wl_drag = (event.x, event.y, self.vmin, self.vmax)
        elif event.button == 2:
            inv = self.ax.transData.inverted().frozen()
            self._pan_drag = (event.x, event.y, self.ax.get_xlim(), self.ax.get_ylim(), inv)

    def on_motion(self, event) -> None:
        if self.result is not None:
            return
        if self._drag is not None and event.inaxes is self.ax and event.xdata is not None:
            self._place(self._drag, event.ydata, event.xdata)
            self.redraw()
        elif self._wl_drag is not None:
            x0, y0, lo, hi = self._wl_drag
            width, level = hi - lo, (hi + lo) / 2
            scale = max(width, 1e-6) / 200.0
            width = max(width + (event.x - x0) * scale, 1e-6)
            level = level - (event.y - y0) * scale
            self.set_window(level - width / 2, level + width / 2)
        elif self._pan_drag is not None:
            x0, y0, xlim, ylim, inv = self._pan_drag
            a = inv.transform((x0, y0))
            b = inv.transform((event.x, event.y))
            dx, dy = a[0] - b[0], a[1] - b[1]
            self.ax.set_xlim(xlim[0] + dx, xlim[1] + dx)
            self.ax.set_ylim(ylim[0] + dy, ylim[1] + dy)
            self.fig.canvas.draw_idle()

    def on_release(self, event) -> None:
        if self._drag is not None:
            self._drag = None
            self.redraw()
        self._wl_drag = None
        self._pan_drag = None

    def on_scroll(self, event) -> None:
        if self.result is not None:
            return
        step = 1 if event.button == "up" else -1
        self.set_slice(self.index + step)

    def on_key(self, event) -> None:
        if self.result is not None or event.key is None:
            return
        key = event.key
        center = None
        if event.inaxes is self.ax and event.xdata is not None:
            center = (event.ydata, event.xdata)
        if key in ("a", "enter"):
            self.accept()
        elif key in ("s", "escape"):
            self.skip()
        elif key == "r":
            self.reset()
        elif key == "c":
            self.clear()
            self.redraw()
        elif key in ("1", "2", "3"):
            self.active = {"1": "plateau", "2": "meniscus", "3": "surface"}[key]
            self.message = ""
            self.redraw()
        elif key in ("up", "pageup"):
            self.set_slice(self.index + 1)
        elif key in ("down", "pagedown"):
            self.set_slice(self.index - 1)
        elif key in ("+", "="):
            self.zoom(1.5, center)
        elif key in ("-", "_"):
            self.zoom(1 / 1.5, center)
        elif key == "z":
            self.toggle_compartment_zoom()
        elif key == "w":
            self.set_window(*window(self.volume[self.index]))
        elif key == "h":
            self.show_legend = not self.show_legend
            self.redraw()
