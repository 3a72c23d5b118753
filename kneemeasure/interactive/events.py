"""Synthetic matplotlib events for driving a :class:`MeasureController` without a display.

Used by the tests and by scripts that render the window (e.g. the README
screenshot). Positions are ``(row, col)`` data pixels; they are converted to
display coordinates with the axes' current transform.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backend_bases import KeyEvent, MouseEvent

from kneemeasure.interactive.controller import MeasureController


def _xy(ctrl: MeasureController, row: float, col: float) -> tuple[float, float]:
    x, y = ctrl.ax.transData.transform((col, row))
    return float(x), float(y)


def mouse(ctrl: MeasureController, name: str, row: float, col: float, button: int = 1) -> None:
    """Send one mouse event (``button_press_event``, ``motion_notify_event``...) at (row, col)."""
    x, y = _xy(ctrl, row, col)
    ctrl.fig.canvas.callbacks.process(name, MouseEvent(name, ctrl.fig.canvas, x, y, button=button))


def click(ctrl: MeasureController, row: float, col: float, button: int = 1) -> None:
    """Press and release at (row, col)."""
    mouse(ctrl, "button_press_event", row, col, button)
    mouse(ctrl, "button_release_event", row, col, button)


def drag(
    ctrl: MeasureController,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    button: int = 1,
    steps: int = 3,
) -> None:
    """Press at ``start``, move in ``steps`` steps to ``end``, release."""
    mouse(ctrl, "button_press_event", *start, button=button)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        r = start[0] + t * (end[0] - start[0])
        c = start[1] + t * (end[1] - start[1])
        mouse(ctrl, "motion_notify_event", r, c, button=button)
    mouse(ctrl, "button_release_event", *end, button=button)


def key(ctrl: MeasureController, k: str, at: tuple[float, float] | None = None) -> None:
    """Press key ``k`` (matplotlib key name), with the mouse at ``at`` (row, col) if given."""
    x, y = _xy(ctrl, *at) if at is not None else (0.0, 0.0)
    ev = KeyEvent("key_press_event", ctrl.fig.canvas, k, x, y)
    ctrl.fig.canvas.callbacks.process("key_press_event", ev)


def scroll(ctrl: MeasureController, direction: str, at: tuple[float, float] = (0.0, 0.0)) -> None:
    """Scroll ``"up"`` or ``"down"`` with the mouse at ``at`` (row, col)."""
    x, y = _xy(ctrl, *at)
    ev = MouseEvent("scroll_event", ctrl.fig.canvas, x, y, button=direction, step=1)
    ctrl.fig.canvas.callbacks.process("scroll_event", ev)
