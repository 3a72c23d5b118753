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
