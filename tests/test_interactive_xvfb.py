"""End to end: the real TkAgg window under Xvfb, clicked with xdotool.

Needs the Debian packages ``xvfb`` and ``xdotool`` and Python's tkinter
(``python3-tk`` for the system Python); skips with the reason otherwise. The
test starts its own X server on a free display number and every wait has a
timeout, so it never hangs.
"""

from __future__ import annotations

import csv
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kneemeasure.phantom import PhantomSpec, make_volume, write_series

REPO = Path(__file__).resolve().parents[1]


def _need_tools() -> None:
    missing = [b for b in ("Xvfb", "xdotool") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install xvfb xdotool)")
    try:
        import tkinter  # noqa: F401
    except ImportError:
        pytest.skip("this Python has no tkinter (TkAgg backend unavailable)")


@pytest.fixture
def xvfb():
    """A private Xvfb server; yields its DISPLAY once it accepts clients.

    ``-displayfd`` lets the server pick a free display number itself and write it
    when it is ready: no collision with another server started at the same time
    (two test runs side by side), and no window opened before the server answers.
    """
    _need_tools()
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 15
    try:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(0.0, left))
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:  # timed out, or the server exited
                proc.kill()
                pytest.skip("Xvfb did not start")
            number += chunk
    finally:
        os.close(read_fd)
    try:
        yield f":{int(number)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _env(display: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env["DISPLAY"] = display
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> dict:
    """The window's geometry once it has stopped changing (the window manager-less
    X server may resize the window after the first draw)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if path.exists():
            info = json.loads(path.read_text())
            if info == last:
                return info
            last = info
            time.sleep(0.5)
            continue
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"kneemeasure exited ({proc.returncode}) before the window opened:\n{out}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the interactive window did not open within the timeout")


def _screen_xy(info: dict, row: float, col: float) -> tuple[int, int]:
    m = info["data_to_canvas"]
    x = m[0][0] * col + m[0][1] * row + m[0][2]
    y = m[1][0] * col + m[1][1] * row + m[1][2]
    ox, oy = info["screen_xy_of_canvas"]
    return round(ox + x), round(oy + info["canvas_height_px"] - y)


def _row(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1, rows
    return rows[0]


def test_clicks_in_real_window_measure_truth_and_replay(xvfb, tmp_path):
    # anisotropic pixels; a level plateau so that the image-row direction of --no-auto is exact
    spec = PhantomSpec(
        n_slices=5, rows=220, cols=160, row_spacing_mm=0.45, col_spacing_mm=0.6, extrusion_mm=3.5
    )
    write_series(spec, tmp_path / "ph")
    _, truth = make_volume(spec)
    info_path = tmp_path / "window.json"
    cmd = [
        sys.executable,
        "-m",
        "kneemeasure.cli",
        "measure",
        str(tmp_path / "ph"),
        "-o",
        str(tmp_path / "out"),
        "-q",
        "--interactive",
        "--no-auto",
        "--slice",
        str(truth.ref_instance_number),
        "--save-corrections",
        str(tmp_path / "corrections.csv"),
    ]
    env = _env(xvfb, KNEEMEASURE_WINDOW_INFO=str(info_path))
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        for rc in (truth.plateau_rc, truth.meniscus_rc):
            # hover first, then re-read the geometry: anything that moved the image
            # (toolbar read-out, late resize) is settled before the click
            x, y = _screen_xy(_wait_for(info_path, proc, timeout=90), *rc)
            subprocess.run(
                ["xdotool", "mousemove", str(x), str(y)], env=env, check=True, timeout=20
            )
            x, y = _screen_xy(_wait_for(info_path, proc, timeout=30), *rc)
            subprocess.run(
                ["xdotool", "mousemove", str(x), str(y), "click", "1"],
                env=env,
                check=True,
                timeout=20,
            )
            time.sleep(0.3)
        subprocess.run(["xdotool", "key", "a"], env=env, check=True, timeout=20)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    row = _row(tmp_path / "out" / "measurements.csv")
    assert row["method"] == "manual"
    assert row["status"] == "ok"
    assert row["plateau_direction_source"] == "image-row"
    assert int(row["instance_number"]) == truth.ref_instance_number
    assert abs(float(row["extrusion_mm"]) - truth.extrusion_mm) < 0.5
    assert abs(float(row["plateau_row_px"]) - truth.plateau_rc[0]) * spec.row_spacing_mm < 0.5
    assert abs(float(row["meniscus_col_px"]) - truth.meniscus_rc[1]) * spec.col_spacing_mm < 0.5
    assert (tmp_path / "out" / row["png"]).stat().st_size > 10_000

    # the corrections file replays to the same CSV, without a window or any flag
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "kneemeasure.cli",
            "measure",
            str(tmp_path / "ph"),
            "-o",
            str(tmp_path / "replay"),
            "-q",
            "--points-file",
            str(tmp_path / "corrections.csv"),
        ],
        env=_env(""),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert replay.returncode == 0, replay.stderr
    assert (tmp_path / "replay" / "measurements.csv").read_text() == (
        tmp_path / "out" / "measurements.csv"
    ).read_text()


def test_interactive_without_display_fails_at_once(tmp_path):
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("MPLBACKEND", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    (tmp_path / "x").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "kneemeasure.cli", "measure", str(tmp_path / "x"), "--interactive"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs a display" in proc.stderr and "DISPLAY" in proc.stderr
