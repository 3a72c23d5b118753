"""Open the real interactive window (TkAgg by default) around :class:`MeasureController`.

Without a display the window is refused at once with a :class:`UsageError`, so
``--interactive`` never hangs in CI. ``$MPLBACKEND`` may name another
interactive backend (e.g. ``QtAgg``); a non-interactive one (``Agg``...) is refused.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from kneemeasure.errors import UsageError
from kneemeasure.interactive.controller import MeasureController, SessionResult

NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def _backend_name() -> str:
    env = os.environ.get("MPLBACKEND", "").strip()
    return env if env else "TkAgg"


def check_display() -> str:
    """Check that a window can be opened; return the backend name to use.

    Raises
    ------
    UsageError
        No ``$DISPLAY`` / ``$WAYLAND_DISPLAY`` (Linux), a non-interactive
        ``$MPLBACKEND``, or Tk missing from this Python (for TkAgg).
    """
    backend = _backend_name()
    low = backend.lower()
    if low in NON_INTERACTIVE or low.startswith("module://matplotlib_inline"):
        raise UsageError(
            f"--interactive needs an interactive matplotlib backend but $MPLBACKEND={backend}; "
            "unset MPLBACKEND (TkAgg is used) or set it to TkAgg/QtAgg, "
            "or use --points / --points-file without a window"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise UsageError(
            "--interactive needs a display but $DISPLAY is not set (no X server); "
            "run it on a desktop, over ssh -X, or under xvfb-run, "
            "or use --points / --points-file without a window"
        )
    if low == "tkagg":
        try:
            import tkinter  # noqa: F401
        except ImportError:
            raise UsageError(
                "--interactive uses the TkAgg backend but this Python has no tkinter; "
                "install Tk (Debian: apt-get install python3-tk) or set MPLBACKEND=QtAgg "
                "with PyQt/PySide installed"
            ) from None
    return backend


def _write_window_info(ctrl: MeasureController, path: str) -> None:
    """Where the image is on the screen (for the Xvfb end-to-end test and screen readers).

    Writes JSON: ``screen_xy_of_canvas`` (top-left corner of the canvas on the
    screen, pixels), ``canvas_height_px`` and ``data_to_canvas`` (3x3 affine from
    ``(col, row, 1)`` to canvas pixels with the origin at the bottom left).
    """
    import json

    widget = getattr(ctrl.fig.canvas, "get_tk_widget", None)
    if widget is None:
        return
    w = widget()
    info = {
        "screen_xy_of_canvas": [int(w.winfo_rootx()), int(w.winfo_rooty())],
        "canvas_height_px": float(ctrl.fig.bbox.height),
        "data_to_canvas": ctrl.ax.transData.get_matrix().tolist(),
        "index": ctrl.index,
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)


#: Signs that the X server refused one connection (it does when several come in a
#: quick row, e.g. matplotlib's display check and then Tk; Xvfb refused about one in
#: five back-to-back connections on a busy machine), not that there is no display.
_REFUSED = ("headless", "couldn't connect to display")


def _retry_connect(open_it, *, attempts: int = 5, wait_s: float = 0.2):
    """``open_it()``, tried again after ``wait_s`` while the display refuses it."""
    import time

    for attempt in range(attempts):
        try:
            return open_it()
        except Exception as exc:  # ImportError (matplotlib) or TclError (Tk)
            if attempt == attempts - 1 or not any(r in str(exc) for r in _REFUSED):
                raise
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def run_session(volume: np.ndarray, **controller_kw) -> SessionResult:
    """Open a window, let the user measure, return what was decided.

    Parameters
    ----------
    volume : ndarray, shape (n_slices, rows, cols)
        The slices of the series.
    **controller_kw
        Passed to :class:`MeasureController` (index, spacing, outer_col_sign, auto, detect...).

    Returns
    -------
    SessionResult
        ``action="skip"`` when the window is closed without accepting.

    Raises
    ------
    UsageError
        When no window can be opened (see :func:`check_display`).
    """
    backend = check_display()
    import matplotlib.pyplot as plt

    previous = plt.get_backend()
    try:
        _retry_connect(lambda: plt.switch_backend(backend))
    except (ImportError, RuntimeError) as exc:
        raise UsageError(
            f"--interactive: the matplotlib backend {backend} cannot start ({exc}); "
            "check $DISPLAY and the GUI toolkit, or use --points / --points-file"
        ) from None
    try:
        try:
            fig = _retry_connect(lambda: plt.figure(figsize=(9.0, 8.6)))
        except Exception as exc:  # Tk raises TclError ("couldn't connect to display")
            raise UsageError(
                f"--interactive: cannot open a window on display "
                f"{os.environ.get('DISPLAY', '?')} ({type(exc).__name__}: {exc}); "
                "check the X server, or use --points / --points-file"
            ) from None
        manager = fig.canvas.manager
        if manager is not None:
            # our keys replace matplotlib's defaults ('s' save, 'q' quit, 'l' log scale...)
            handler = getattr(manager, "key_press_handler_id", None)
            if handler is not None:
                fig.canvas.mpl_disconnect(handler)
            try:
                manager.set_window_title("kneemeasure — interactive measurement")
            except AttributeError:
                pass
        ctrl = MeasureController(fig, volume, on_done=lambda _r: plt.close(fig), **controller_kw)
        info_path = os.environ.get("KNEEMEASURE_WINDOW_INFO")
        if info_path:
            fig.canvas.mpl_connect("draw_event", lambda _e: _write_window_info(ctrl, info_path))
        plt.show(block=True)
        return ctrl.result or SessionResult("skip", ctrl.index)
    finally:
        plt.close("all")
        plt.switch_backend(previous if previous.lower() in NON_INTERACTIVE else "agg")
