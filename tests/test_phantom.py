"""Tests of the synthetic knee phantom: exact truth, rendering, DICOM writing."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from kneemeasure import phantom as ph
from kneemeasure.errors import UsageError
from kneemeasure.phantom import PhantomSpec, make_volume, tissue_at, write_series

REPO = Path(__file__).resolve().parents[1]
# small but anatomically complete: 1.0 mm pixels, 140 mm field of view, 5 slices
SMALL = dict(rows=140, cols=140, row_spacing_mm=1.0, col_spacing_mm=1.0, n_slices=5)


def _mm(rc, spec):
    return np.array([rc[0] * spec.row_spacing_mm, rc[1] * spec.col_spacing_mm])


def _signed_mme(spec, plateau_rc, meniscus_rc, dir_rc):
    return float((_mm(meniscus_rc, spec) - _mm(plateau_rc, spec)) @ np.asarray(dir_rc))


GEOMETRIES = [
    PhantomSpec(),
    PhantomSpec(laterality="L", extrusion_mm=-1.0, lateral_extrusion_mm=2.5),
    PhantomSpec(row_spacing_mm=0.3125, col_spacing_mm=1.5, rows=448, cols=90, extrusion_mm=7),
    PhantomSpec(rotation_deg=13.0, plateau_tilt_deg=-4.0, flip_columns=True, extrusion_mm=3.3),
    PhantomSpec(laterality="L", knee_offset_mm=(5.0, -7.0), knee_scale=0.93, rotation_deg=-6),
]


@pytest.mark.parametrize("spec", GEOMETRIES)
def test_truth_mme_recomputes_from_points_and_direction(spec):
    t = ph.make_truth(spec)
    assert math.hypot(*t.plateau_dir_rc) == pytest.approx(1.0, abs=1e-12)
    mme = _signed_mme(spec, t.plateau_rc, t.meniscus_rc, t.plateau_dir_rc)
    assert mme == pytest.approx(spec.extrusion_mm, abs=1e-6)
    assert t.extrusion_mm == pytest.approx(spec.extrusion_mm, abs=1e-9)
    width = _signed_mme(spec, t.meniscus_inner_rc, t.meniscus_rc, t.plateau_dir_rc)
    assert width == pytest.approx(t.meniscal_width_mm, abs=1e-6)
    lat = _signed_mme(spec, t.lateral_plateau_rc, t.lateral_meniscus_rc, t.lateral_plateau_dir_rc)
    assert lat == pytest.approx(spec.lateral_extrusion_mm, abs=1e-6)
    # the lateral direction is the medial one reversed; medial lies toward medial_col_sign
    assert np.allclose(t.lateral_plateau_dir_rc, -np.asarray(t.plateau_dir_rc))
    assert np.sign(t.plateau_rc[1] - t.lateral_plateau_rc[1]) == t.medial_col_sign
    assert t.fibula_col_sign == -t.medial_col_sign
    assert t.slice_extrusion_mm[t.ref_index] == pytest.approx(spec.extrusion_mm)


def test_medial_col_sign_follows_laterality_and_flip():
    signs = {
        (lat, flip): ph._medial_col_sign(PhantomSpec(laterality=lat, flip_columns=flip))
        for lat in "RL"
        for flip in (False, True)
    }
    assert signs == {("R", False): 1, ("L", False): -1, ("R", True): -1, ("L", True): 1}


@pytest.mark.parametrize("spec", GEOMETRIES[:4])
def test_tissues_at_truth_points(spec):
    """Exact labels around the truth points (analytic, no pixels involved)."""
    t = ph.make_truth(spec)
    d = np.asarray(t.plateau_dir_rc)

    def at(rc, along_mm=0.0, below_mm=0.0):
        # below = perpendicular to the plateau, toward the tibia
        perp = np.array([d[1], -d[0]]) * t.medial_col_sign
        if perp[0] < 0:
            perp = -perp
        p = _mm(rc, spec) + along_mm * d + below_mm * perp
        return int(
            tissue_at(spec, t.ref_index, p[0] / spec.row_spacing_mm, p[1] / spec.col_spacing_mm)
        )

    assert at(t.meniscus_rc, -0.2) == ph.MENISCUS
    assert at(t.meniscus_rc, +0.2) in (ph.CAPSULE, ph.FLUID)
    assert at(t.meniscus_inner_rc, +0.2) == ph.MENISCUS
    assert at(t.meniscus_inner_rc, -0.2) != ph.MENISCUS
    assert at(t.plateau_rc, -0.3, 0.3) == ph.CORTEX  # just inside the corner
    assert at(t.plateau_rc, -3.0, 3.0) == ph.MARROW
    assert at(t.plateau_rc, +0.6, 3.0) not in (ph.CORTEX, ph.MARROW)  # outside the cortex


def test_osteophyte_is_bone_beyond_the_truth_margin():
    spec = PhantomSpec(osteophyte_mm=3.5, extrusion_mm=2.0, **SMALL)
    plain = PhantomSpec(extrusion_mm=2.0, **SMALL)
    t = ph.make_truth(spec)
    t0 = ph.make_truth(plain)
    assert t.plateau_rc == t0.plateau_rc  # the truth margin excludes the spur
    r, c = t.plateau_rc
    pt = (r + 1.5, c + 2.0 * t.medial_col_sign)  # 2 mm beyond the margin, 1.5 mm down
    assert tissue_at(spec, t.ref_index, *pt) in (ph.CORTEX, ph.MARROW)
    assert tissue_at(plain, t.ref_index, *pt) not in (ph.CORTEX, ph.MARROW)


@pytest.mark.parametrize("contrast", list(ph.CONTRASTS))
def test_rendered_meniscus_is_dark_and_its_edge_has_contrast(contrast):
    spec = PhantomSpec(contrast=contrast, noise=0.0, bias=0.0, extrusion_mm=3.0, **SMALL)
    vol, t = make_volume(spec)
    img = vol[t.ref_index].astype(float)
    d = np.asarray(t.plateau_dir_rc)

    def sample(along_mm):
        p = _mm(t.meniscus_rc, spec) + along_mm * d
        rc = [[p[0] / spec.row_spacing_mm], [p[1] / spec.col_spacing_mm]]
        return float(ndimage.map_coordinates(img, rc, order=1)[0])

    inside, outside = sample(-2.5), sample(+1.0)
    assert inside < 150.0  # meniscus dark on every contrast
    assert outside - inside > 150.0  # the capsule just outside is clearly brighter


def test_anisotropic_spacing_scales_pixel_positions():
    iso = PhantomSpec(rows=256, cols=256, row_spacing_mm=0.5, col_spacing_mm=0.5)
    ani = PhantomSpec(rows=427, cols=128, row_spacing_mm=0.3, col_spacing_mm=1.0)
    for spec_a, spec_b in ((iso, ani),):
        ta = ph.make_truth(spec_a)
        tb = ph.make_truth(spec_b)
        for name in ("plateau_rc", "meniscus_rc", "lateral_meniscus_rc"):
            ca = np.array(getattr(ta, name)) - [(spec_a.rows - 1) / 2, (spec_a.cols - 1) / 2]
            cb = np.array(getattr(tb, name)) - [(spec_b.rows - 1) / 2, (spec_b.cols - 1) / 2]
            mm_a = ca * [spec_a.row_spacing_mm, spec_a.col_spacing_mm]
            mm_b = cb * [spec_b.row_spacing_mm, spec_b.col_spacing_mm]
            assert np.allclose(mm_a, mm_b, atol=1e-9)
            assert not np.allclose(ca, cb)  # the pixel positions do differ
    # and the rendered image follows: the medial meniscus is dark at its truth pixel
    vol, t = make_volume(
        PhantomSpec(
            rows=200,
            cols=60,
            row_spacing_mm=0.6,
            col_spacing_mm=2.0,
            n_slices=3,
            noise=0.0,
            bias=0.0,
            extrusion_mm=4.0,
        )
    )
    rr = t.meniscus_rc[0]
    cc = t.meniscus_rc[1] - 2.5 / 2.0  # 2.5 mm inside the outer edge
    assert ndimage.map_coordinates(vol[t.ref_index], [[rr], [cc]], order=1)[0] < 200


def test_rotation_rotates_the_truth():
    base = PhantomSpec()
    rot = PhantomSpec(rotation_deg=10.0)
    t0 = ph.make_truth(base)
    t1 = ph.make_truth(rot)
    th = math.radians(10.0)
    centre = np.array([(base.rows - 1) / 2, (base.cols - 1) / 2]) * 0.5
    for name in ("plateau_rc", "meniscus_rc"):
        r0, c0 = np.array(getattr(t0, name)) * 0.5 - centre
        # counter-clockwise on screen: col' = cos*col + sin*row, row' = -sin*col + cos*row
        expect = np.array(
            [-math.sin(th) * c0 + math.cos(th) * r0, math.cos(th) * c0 + math.sin(th) * r0]
        )
        assert np.allclose(np.array(getattr(t1, name)) * 0.5 - centre, expect, atol=1e-9)
    assert t1.plateau_dir_rc == pytest.approx((-math.sin(th), math.cos(th)))
    assert t1.extrusion_mm == pytest.approx(base.extrusion_mm)


def test_spine_height_peaks_at_reference_and_meniscus_absent_at_ends():
    spec = PhantomSpec(n_slices=16, ref_offset=1)
    _, t = make_volume(PhantomSpec(**{**spec.__dict__, **SMALL, "n_slices": 16}))
    assert int(np.argmax(t.spine_height_mm)) == t.ref_index == 8
    assert np.isnan(t.slice_extrusion_mm[0]) and np.isnan(t.slice_extrusion_mm[-1])
    assert t.max_extrusion_mm >= t.extrusion_mm


def test_deterministic_and_seed_dependent():
    a, _ = make_volume(PhantomSpec(seed=3, **SMALL))
    b, _ = make_volume(PhantomSpec(seed=3, **SMALL))
    c, _ = make_volume(PhantomSpec(seed=4, **SMALL))
    assert a.shape == (5, 140, 140) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_spec_raises_usage_error():
    with pytest.raises(UsageError, match="contrast"):
        make_volume(PhantomSpec(contrast="t2"))
    with pytest.raises(UsageError, match="laterality"):
        make_volume(PhantomSpec(laterality="X"))
    with pytest.raises(UsageError, match="transfer_syntax"):
        write_series(PhantomSpec(**SMALL), Path("unused"), transfer_syntax="jpeg")


def _read_sorted(paths):
    dss = [pydicom.dcmread(p) for p in paths]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = [float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))) for ds in dss]
    order = np.argsort(pos)
    return [dss[i] for i in order], np.array(pos)[order]


@pytest.mark.parametrize("ts", ["explicit", "rle", "jpeg2000"])
def test_write_series_round_trip(tmp_path, ts):
    spec = PhantomSpec(
        laterality="L",
        row_spacing_mm=0.9,
        col_spacing_mm=1.2,
        rows=150,
        cols=110,
        n_slices=4,
        reverse_instances=True,
        rescale_slope=0.5,
        rescale_intercept=-100.0,
        **{"seed": 5},
    )
    paths, row = write_series(spec, tmp_path / "s", transfer_syntax=ts)
    assert len(paths) == 4 and [p.name for p in paths] != sorted(p.name for p in paths)
    dss, pos = _read_sorted(paths)
    vol, t = make_volume(spec)
    assert np.all(np.diff(pos) > 0)
    assert np.allclose(np.diff(pos), spec.slice_spacing_mm)
    for i, ds in enumerate(dss):
        assert [float(x) for x in ds.PixelSpacing] == [0.9, 1.2]  # row \ column spacing
        assert [float(x) for x in ds.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
        assert ds.Laterality == "L" and ds.Modality == "MR"
        assert ds.PatientName == "PHANTOM^KNEE" and ds.PatientID == "PHANTOM-001"
        assert ds.InstanceNumber == t.instance_numbers[i] == 4 - i
        assert (
            ds.file_meta.TransferSyntaxUID
            == {
                "explicit": pydicom.uid.ExplicitVRLittleEndian,
                "rle": pydicom.uid.RLELossless,
                "jpeg2000": pydicom.uid.JPEG2000Lossless,
            }[ts]
        )
        stored = np.rint((vol[i] - spec.rescale_intercept) / spec.rescale_slope)
        assert np.array_equal(ds.pixel_array, stored.astype(np.uint16))  # bit-exact decode
        physical = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.max(np.abs(physical - vol[i])) <= 0.25 + 1e-3  # half a stored step
    # pixel (0, 0) centre sits at IPP; columns step along +x by the column spacing
    ipp = np.array(dss[0].ImagePositionPatient, dtype=float)
    assert ipp[0] == pytest.approx(-(spec.cols - 1) / 2 * 1.2)
    assert ipp[2] == pytest.approx((spec.rows - 1) / 2 * 0.9)
    assert row["ref_instance_number"] == dss[t.ref_index].InstanceNumber
    assert row["transfer_syntax"] == ts


def test_laterality_tag_can_be_left_out_and_columns_flipped(tmp_path):
    spec = PhantomSpec(
        include_laterality_tag=False,
        flip_columns=True,
        n_slices=3,
        rows=120,
        cols=120,
        row_spacing_mm=1.1,
        col_spacing_mm=1.1,
    )
    paths, row = write_series(spec, tmp_path / "s")
    dss, pos = _read_sorted(paths)
    assert all("Laterality" not in ds and "ImageLaterality" not in ds for ds in dss)
    assert [float(x) for x in dss[0].ImageOrientationPatient] == [-1, 0, 0, 0, 0, -1]
    assert row["medial_col_sign"] == -1 and row["fibula_col_sign"] == 1


def test_committed_samples_match_regeneration(tmp_path):
    committed = REPO / "sample_dicoms" / "truth.csv"
    if not committed.exists():
        pytest.fail("sample_dicoms/truth.csv missing: run scripts/make_samples.py")
    new = ph.write_samples(tmp_path)
    with committed.open() as fa, new.open() as fb:
        rows_a, rows_b = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    assert len(rows_a) == len(rows_b) == len(ph.SAMPLE_SPECS)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert list(ra) == list(ph.TRUTH_COLUMNS)
        for key in ph.TRUTH_COLUMNS:
            try:
                fa_, fb_ = float(ra[key]), float(rb[key])
            except ValueError:
                assert ra[key] == rb[key], key
            else:
                assert fa_ == pytest.approx(fb_, abs=1e-6), key
        assert (REPO / "sample_dicoms" / ra["series_dir"]).is_dir()
        n_files = len(list((REPO / "sample_dicoms" / ra["series_dir"]).iterdir()))
        assert n_files == int(ra["n_slices"])
        # the committed files carry the truth's series UID
        first = next((REPO / "sample_dicoms" / ra["series_dir"]).iterdir())
        hdr = pydicom.dcmread(first, stop_before_pixels=True)
        assert hdr.SeriesInstanceUID == ra["series_instance_uid"]


def test_suite_specs_are_varied():
    specs = ph.suite_specs()
    assert len(specs) == 24 and specs == ph.suite_specs()
    assert {s.contrast for s in specs} == set(ph.CONTRASTS)
    assert {s.laterality for s in specs} == {"R", "L"}
    assert min(s.extrusion_mm for s in specs) == pytest.approx(-1.0)
    assert max(s.extrusion_mm for s in specs) == pytest.approx(7.0)
    assert any(s.row_spacing_mm != s.col_spacing_mm for s in specs)
    assert any(s.osteophyte_mm > 0 for s in specs) and any(s.rotation_deg for s in specs)
    assert len(ph.suite_specs(5, seed=1)) == 5
