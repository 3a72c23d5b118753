"""Pipeline helpers on hand-made inputs."""

import numpy as np
import pytest

from kneemeasure.pipeline import MeasureOptions, profile_indices


def test_profile_indices_fill_gaps_and_include_reference():
    assert profile_indices([3, 4, 8], 5) == [3, 4, 5, 6, 7, 8]
    assert profile_indices([6, 7], 2) == [2, 3, 4, 5, 6, 7]
    assert profile_indices([], None) == []


def test_profile_indices_step_keeps_reference_slice():
    # thin-slice reformat: every 6th plane, counted from the reference plane
    assert profile_indices([0, 20], 7, step=6) == [1, 7, 13, 19]
    assert 7 in profile_indices([0, 20], 7, step=6)


def test_options_sides():
    assert MeasureOptions(side="both").sides() == ("medial", "lateral")
    assert MeasureOptions().sides() == ("medial",)


def test_forced_slice_with_header_laterality_decodes_one_slice(samples_dir, monkeypatch):
    """--slice + Laterality in the header: only that slice's pixels are decoded."""
    import kneemeasure.io.pixels as pixels
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import measure_series

    calls = []
    real = pixels.read_frame

    def counting(ref):
        calls.append(ref.instance_number)
        return real(ref)

    monkeypatch.setattr(pixels, "read_frame", counting)
    (series,), errors = discover_series([samples_dir / "r_pd_iso_mme1p5"])
    assert not errors
    (row,) = measure_series(series, MeasureOptions(slice_instance=6, png=False))
    assert calls == [6]
    assert row.instance_number == 6 and row.status in ("ok", "review")


def test_worker_processes_give_the_same_outputs(samples_dir, tmp_path):
    """--workers 2 (decoding, detection, PNG in forked workers) == in-process."""
    from kneemeasure.pipeline import run_measure

    paths = [samples_dir / "l_pd_nolat_rev_mme-0p8", samples_dir / "r_pdfs_rle_mme5p0"]
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        result = run_measure(paths, out, MeasureOptions(side="both", workers=workers))
        assert [m.status for m in result.measurements].count("error") == 0
        outs[workers] = out
        assert all((out / m.png).stat().st_size > 10_000 for m in result.measurements)
    for name in ("measurements.csv", "slices.csv"):
        assert (outs[1] / name).read_text() == (outs[2] / name).read_text()


def test_series_executor_falls_back_to_in_process():
    from kneemeasure.parallel import map_ordered, series_executor

    assert series_executor(0) is None
    assert map_ordered(None, divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
    pool = series_executor(2)
    if pool is not None:  # Linux: forked workers, same answers in order
        with pool:
            assert map_ordered(pool, divmod, [(7, 2), (9, 4), (1, 1)]) == [(3, 1), (2, 1), (1, 0)]


def test_dark_band_at_the_bottom_edge_is_no_joint_not_a_crash(tmp_path):
    """Hard suite seed 1, no_laterality_tag_013: a cartilage band reaching the image's
    bottom row made the coarse notch trace index past the image (IndexError ->
    internal error row). Now that slice has no joint and the series is measured."""
    from kneemeasure.io import discover_series
    from kneemeasure.phantom import write_series
    from kneemeasure.pipeline import measure_series
    from kneemeasure.validate import hard_suite_specs

    spec = next(s for _c, s in hard_suite_specs(240, seed=1)
                if s.name == "no_laterality_tag_013")  # fmt: skip
    _paths, truth = write_series(spec, tmp_path / "case")
    (series,), _ = discover_series([tmp_path / "case"])
    (row,) = measure_series(series, MeasureOptions(png=False, profile=False))
    assert row.laterality == truth["laterality"] and row.laterality_source == "anatomy"
    assert abs(row.extrusion_mm - float(truth["extrusion_mm"])) <= 0.5


def test_a_failed_png_never_loses_the_row():
    from kneemeasure import pipeline
    from kneemeasure.models import Measurement

    def broken(*_a):
        raise OSError("disk full")

    m = Measurement(source="x")
    assert pipeline._png_written(m, False, broken) is False
    assert pipeline._png_written(m, False, lambda: True) is True
    with pytest.raises(OSError):
        pipeline._png_written(m, True, broken)  # --debug: the traceback is wanted


def test_prefetch_leaves_out_slices_whose_detection_crashed(monkeypatch):
    """A bug on a slice the measurement may not need must not fail the series only
    because workers detected it up front (workers = 1 would never have looked)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from kneemeasure import pipeline
    from kneemeasure.errors import DetectionError

    def fake(image, *_args):
        k = int(image[0, 0])
        if k == 1:
            raise ValueError("bug")
        return DetectionError("no joint") if k == 2 else f"landmarks {k}"

    monkeypatch.setattr(pipeline, "detect_task", fake)
    volume = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    with ThreadPoolExecutor(2) as pool:
        got = pipeline._prefetch(pool, volume, [0, 1, 2, 3], ())
    assert set(got) == {0, 2, 3}
    assert got[0] == "landmarks 0" and isinstance(got[2], DetectionError)


@pytest.mark.parametrize("first_series", [True, False])
def test_decoding_alongside_the_imports_gives_the_same_stack(
    samples_dir, monkeypatch, first_series
):
    """measure decodes in a forked process while it imports the detection code (the
    first series of a run) or half in a worker (later series): same stack as in-process."""

    from kneemeasure.io import discover_series
    from kneemeasure.parallel import series_executor
    from kneemeasure.pipeline import _start_loading

    (series,), _ = discover_series([samples_dir / "r_t1_slope_j2k_mme2p6"])
    indices = list(range(series.n_slices))
    want = series.load_volume(indices)
    import kneemeasure.pipeline as pipeline

    # as if the detection modules were not imported yet (first series) or were
    monkeypatch.setattr(pipeline, "_detection_imported", lambda: not first_series)
    decoders = []

    def spy(workers, **kw):
        decoders.append(workers)
        return series_executor(workers, **kw)

    monkeypatch.setattr(pipeline, "series_executor", spy)
    pool = series_executor(2)
    if pool is None:
        pytest.skip("worker processes need fork (Linux)")
    with pool, _start_loading(series, indices, pool) as loading:
        got, grid = loading()
    assert decoders == ([1] if first_series else [])  # the short-lived decoding process
    assert got.dtype == want.dtype and got.shape == want.shape == (12, *want.shape[1:])
    np.testing.assert_array_equal(got, want)
    if first_series:  # resampled while decoding: the coarse pass's own resampling, exactly
        from kneemeasure.detect.coarse import downsample_volume

        coarse = downsample_volume(want, row_spacing_mm=series.row_spacing_mm,
                                   col_spacing_mm=series.col_spacing_mm)  # fmt: skip
        assert grid.dtype == coarse.dtype
        np.testing.assert_array_equal(grid, coarse)
    else:
        assert grid is None


def test_coarse_pass_on_workers_equals_in_process(samples_dir):
    """analyse_knee(map_slices=...) spreads the per-slice bone masks over workers."""
    import functools

    from kneemeasure.detect.coarse import analyse_knee
    from kneemeasure.io import discover_series
    from kneemeasure.parallel import map_ordered, series_executor

    (series,), _ = discover_series([samples_dir / "l_pd_nolat_rev_mme-0p8"])
    vol = series.load_volume()
    kw = dict(row_spacing_mm=series.row_spacing_mm, col_spacing_mm=series.col_spacing_mm,
              medial_col_sign=-1)  # fmt: skip
    want = analyse_knee(vol, **kw)
    pool = series_executor(2)
    if pool is None:
        pytest.skip("worker processes need fork (Linux)")
    with pool:
        got = analyse_knee(vol, map_slices=functools.partial(map_ordered, pool), **kw)
    assert sum(s.ok for s in want.slices) >= 6
    for a, b in zip(want.slices, got.slices, strict=True):
        assert a.ok == b.ok
        np.testing.assert_equal(a.eminence_mm, b.eminence_mm)  # NaN == NaN here
        if a.femur is not None:
            np.testing.assert_array_equal(a.femur, b.femur)
            np.testing.assert_array_equal(a.tibia, b.tibia)


def test_shared_decoding_raises_the_in_order_error(samples_dir, tmp_path, monkeypatch):
    """Two broken frames: decoding in two processes reports the same (first) error as
    decoding in order in-process."""
    import os
    import shutil
    import time

    from kneemeasure.errors import KneeMeasureError
    from kneemeasure.io import discover_series
    from kneemeasure.models import Series
    from kneemeasure.parallel import series_executor
    from kneemeasure.pipeline import _start_loading

    src = tmp_path / "s"
    shutil.copytree(samples_dir / "r_t1_slope_j2k_mme2p6", src)
    (series,), _ = discover_series([src])
    for k in (4, 9):  # cut the pixel data of two frames (headers stay readable)
        path = series.frames[k].path
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 3000])
    (series,), errors = discover_series([src])
    assert not errors and series.n_slices == 12
    indices = list(range(series.n_slices))
    with pytest.raises(KneeMeasureError) as in_order:
        series.load_volume(indices)
    import kneemeasure.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_detection_imported", lambda: False)  # the first series
    # this process decodes slowly, so the decoding process meets the first broken
    # frame and this one the second: the reported error must still be the first
    parent, plain = os.getpid(), Series.load_frame

    def slow_here(self, i):
        if os.getpid() == parent:
            time.sleep(0.05)
        return plain(self, i)

    monkeypatch.setattr(Series, "load_frame", slow_here)
    pool = series_executor(2)
    if pool is None:
        pytest.skip("worker processes need fork (Linux)")
    with pytest.raises(KneeMeasureError) as shared, pool, _start_loading(
        series, indices, pool
    ) as loading:
        loading()
    assert str(shared.value) == str(in_order.value)
    assert series.frames[4].path.name in str(shared.value)


@pytest.mark.parametrize(
    ("values", "blank"),
    [
        ([[0.0, 0.0], [0.0, 0.0]], True),
        ([[5.0, 5.0], [5.0, 5.0]], True),
        ([[0.0, 1.0], [2.0, 3.0]], False),
        ([[1.0, float("nan")], [2.0, 3.0]], True),
        ([[1.0, float("inf")], [2.0, 3.0]], True),
        ([[float("-inf"), 1.0], [2.0, 3.0]], True),
    ],
)
def test_constant_or_non_finite_stacks_are_refused(values, blank):
    from kneemeasure.errors import UnsupportedImageError
    from kneemeasure.pipeline import _constant_check

    stack = np.array([values], np.float32)
    if blank:
        with pytest.raises(UnsupportedImageError, match="constant"):
            _constant_check(stack, "s")
    else:
        _constant_check(stack, "s")


def test_only_the_first_series_of_a_run_gets_the_decoding_process(samples_dir, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    """The first series is decoded by a short-lived process while the detection code
    is imported; later series of the run decode half in a pool worker instead."""

    import kneemeasure.pipeline as pipeline
    from kneemeasure.parallel import series_executor

    # as in a new process: not imported until measure_series imports the coarse pass
    state = {"imported": False}
    real_series = pipeline.measure_series

    def measure_series(*args, **kw):
        try:
            return real_series(*args, **kw)
        finally:
            state["imported"] = True

    monkeypatch.setattr(pipeline, "_detection_imported", lambda: state["imported"])
    monkeypatch.setattr(pipeline, "measure_series", measure_series)
    made = []

    def spy(workers, **kw):
        made.append(workers)
        return series_executor(workers, **kw)

    monkeypatch.setattr(pipeline, "series_executor", spy)
    paths = [samples_dir / "r_pd_iso_mme1p5", samples_dir / "r_t1_slope_j2k_mme2p6"]
    result = pipeline.run_measure(paths, tmp_path / "o",
                                  MeasureOptions(workers=2, png=False, profile=False))  # fmt: skip
    if made == []:
        pytest.skip("worker processes need fork (Linux)")
    assert [m.status for m in result.measurements] == ["ok", "ok"]
    assert made == [2, 1]  # the detection pool, then one decoding process (first series)
    import multiprocessing

    assert multiprocessing.active_children() == []  # every worker has ended


_BUG = {}  # set by the test below before the workers fork (they inherit it)


def _buggy_bone_pair(*args):
    """The coarse pass's per-slice task with a bug on its first call (module level,
    so it can be sent to a worker); the other calls are slow."""
    import time

    with _BUG["calls"].get_lock():
        _BUG["calls"].value += 1
        first = _BUG["calls"].value == 1
    if first:
        raise RuntimeError("injected bug")
    time.sleep(0.3)
    return _BUG["plain"](*args)


def test_no_worker_is_left_running_after_a_bug_in_one_slice(samples_dir, tmp_path,
                                                              monkeypatch):  # fmt: skip
    """A bug in one worker task becomes an error row while the other tasks still run;
    run_measure must still wait for its workers (the CLI ends the process at once
    afterwards, so a worker not waited for would be orphaned)."""
    import multiprocessing

    import kneemeasure.detect.coarse as coarse
    import kneemeasure.pipeline as pipeline

    _BUG.update(calls=multiprocessing.get_context("fork").Value("i", 0), plain=coarse._bone_pair)
    monkeypatch.setattr(coarse, "_bone_pair", _buggy_bone_pair)
    result = pipeline.run_measure([samples_dir / "l_pd_nolat_rev_mme-0p8"], tmp_path / "o",
                                  MeasureOptions(workers=2, png=False))  # fmt: skip
    (row,) = result.measurements
    assert row.status == "error" and "injected bug" in row.error, row.error
    assert multiprocessing.active_children() == []


def test_measuring_a_series_imports_what_the_first_series_check_looks_for(samples_dir):
    from kneemeasure.io import discover_series
    from kneemeasure.pipeline import _detection_imported, measure_series

    (series,), _ = discover_series([samples_dir / "r_pd_iso_mme1p5"])
    measure_series(series, MeasureOptions(png=False, profile=False, slice_instance=6))
    assert _detection_imported()
