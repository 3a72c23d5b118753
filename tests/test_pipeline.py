"""Pipeline helpers on hand-made inputs."""

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
