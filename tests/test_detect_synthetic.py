"""Detection accuracy on a small hand-built coronal knee (truth known in mm)."""

import numpy as np
import pytest

from kneemeasure.detect import detect_landmarks, infer_fibula_side, select_reference_slice
from kneemeasure.errors import DetectionError

MARGIN_MM = (55.0, 20.0)  # tibial margin (row_mm, col_mm); medial = decreasing column


def synth_knee(*, row_mm=0.5, col_mm=0.5, extrusion_mm=2.0, dark_marrow=False,
               osteophyte=False, seed=0, fibula=True, eminence_mm=6.0):
    """Coronal knee: femur, cartilage, tibia (plateau at row 55 mm, medial cortex at
    col 20 mm), a dark meniscal wedge 10 mm wide whose outer edge is ``extrusion_mm``
    beyond the margin, a vertical dark MCL 2.5 mm further out, a fibular head at the
    lateral (high column) side, and noise."""
    nr, nc = int(round(100 / row_mm)), int(round(100 / col_mm))
    ss = 5  # supersampling: partial-volume edges sit at their true positions
    y = ((np.arange(nr * ss) + 0.5) / ss - 0.5)[:, None] * row_mm * np.ones((1, nc * ss))
    x = np.ones((nr * ss, 1)) * ((np.arange(nc * ss) + 0.5) / ss - 0.5)[None, :] * col_mm
    bone, cart, soft, dark = (0.1, 0.9, 0.4, 0.1) if dark_marrow else (1.0, 0.55, 0.4, 0.08)
    img = np.full((nr, nc), soft)
    img[(y >= 47) & (y < 55) & (x >= 20) & (x <= 80)] = cart
    femur = (y < 47) & (x >= 22) & (x <= 78)
    img[femur] = bone
    tibia = (y >= 55) & (x >= 20) & (x <= 80)
    emin = (y >= 55 - eminence_mm * (1 - np.abs(x - 52) / 6)) & (np.abs(x - 52) < 6)
    img[(tibia | emin) & (y < 100)] = bone
    img[emin & (y < 55) & (y >= 47)] = bone
    if osteophyte:
        img[(y >= 55) & (y < 58) & (x >= 16.5) & (x < 20)] = bone
    xo = 20.0 - extrusion_mm
    wedge = (x >= xo) & (np.abs(y - 51) <= 3.5 * (1 - (x - xo) / 10.0))
    img[wedge] = dark
    mcl = (x >= xo - 4.0) & (x < xo - 2.5) & (y > 25) & (y < 85)
    img[mcl] = dark
    if fibula:
        img[((y - 68) ** 2 + (x - 90) ** 2) <= 7.0**2] = bone
    img[(x < 5) | (x > 97)] = 0.0  # air beside the leg
    img = img.reshape(nr, ss, nc, ss).mean(axis=(1, 3))
    rng = np.random.default_rng(seed)
    return (img + rng.normal(0, 0.03, img.shape)).astype(np.float32)


def mme_mm(lm, row_mm, col_mm):
    d = np.array(lm.plateau_dir_rc)
    diff = (np.array(lm.meniscus_rc) - np.array(lm.plateau_rc)) * [row_mm, col_mm]
    return float(diff @ d)


@pytest.mark.parametrize(
    "row_mm,col_mm,extr,dark,osteo",
    [
        (0.5, 0.5, 2.0, False, False),
        (0.5, 0.5, 5.0, False, True),
        (0.3125, 1.5, 2.0, False, False),
        (0.4, 0.4, -1.0, True, False),
        (0.3125, 0.3125, 3.5, True, True),
    ],
)
def test_margin_and_extrusion_on_synthetic_knee(row_mm, col_mm, extr, dark, osteo):
    img = synth_knee(row_mm=row_mm, col_mm=col_mm, extrusion_mm=extr, dark_marrow=dark,
                     osteophyte=osteo)
    lm = detect_landmarks(img, row_spacing_mm=row_mm, col_spacing_mm=col_mm, outer_col_sign=-1)
    pr, pc = lm.plateau_rc[0] * row_mm, lm.plateau_rc[1] * col_mm
    assert abs(pr - MARGIN_MM[0]) < 1.0, lm
    assert abs(pc - MARGIN_MM[1]) < 1.0, lm  # the spur (to 16.5 mm) must not move it
    assert abs(lm.plateau_dir_rc[1] + 1.0) < 0.02  # flat plateau, pointing to low columns
    assert mme_mm(lm, row_mm, col_mm) == pytest.approx(extr, abs=0.5)
    assert 0.0 <= lm.confidence <= 1.0


def test_no_joint_raises_detection_error():
    img = np.random.default_rng(1).normal(0.5, 0.05, (128, 128)).astype(np.float32)
    with pytest.raises(DetectionError, match="--points"):
        detect_landmarks(img, row_spacing_mm=0.5, col_spacing_mm=0.5, outer_col_sign=-1)


def test_fibula_side_and_slice_choice_on_synthetic_volume():
    # Eminence heights rise then fall across slices; the peak (index 3) is the reference.
    heights = [2.0, 4.0, 6.0, 9.0, 6.0, 4.0, 2.0]
    vol = np.stack([synth_knee(eminence_mm=h, seed=k) for k, h in enumerate(heights)])
    side, conf = infer_fibula_side(vol, row_spacing_mm=0.5, col_spacing_mm=0.5)
    assert side == 1 and conf > 0.5
    flipped = vol[:, :, ::-1]
    side, conf = infer_fibula_side(flipped, row_spacing_mm=0.5, col_spacing_mm=0.5)
    assert side == -1 and conf > 0.5
    choice = select_reference_slice(vol, row_spacing_mm=0.5, col_spacing_mm=0.5,
                                    medial_col_sign=-1)
    assert abs(choice.index - 3) <= 1
    assert choice.scores.shape == (7,)
