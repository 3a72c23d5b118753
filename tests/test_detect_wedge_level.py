"""Meniscal edge next to a dark band above the joint (real T1 instance 11, issue 3).

On the real coronal T1 (instance 11) the dark body reached the MCL through the tibial
cortex corner and the ligament above the joint: past a small rise at the margin the
profile's vertical extent climbed onto the ligament, which the degenerative-streak pass
took for the rest of a split body (edge 8 mm above the plateau, MME 3.2 mm instead of
about 0). A streak splits one body at one level; these tests pin that rule.
"""

import numpy as np
from scipy import ndimage as ndi

from kneemeasure.detect.meniscus import _same_level, find_wedge


def test_same_level_overlapping_extents():
    bot = np.array([1.6, 1.6, 0.5, 0.3, 0.0])
    top = np.array([3.2, 3.2, 3.7, 3.8, 4.0])
    # run [0.5, 3.7] ... overlaps [1.6, 3.2] by 1.6 >= 0.5 * min(3.2, 1.6)
    assert _same_level(bot, top, ref=slice(0, 2), run=slice(2, 5))


def test_same_level_band_above_the_body():
    bot = np.array([0.5, 0.5, 3.5, 5.6, 6.0, 6.3])
    top = np.array([4.5, 4.5, 7.2, 7.5, 7.5, 7.5])
    # ref [0.5, 4.5]; the run overlaps it by 1.0, 0, 0, 0 mm
    assert not _same_level(bot, top, ref=slice(0, 2), run=slice(2, 6))


def test_edge_stays_at_the_joint_when_a_dark_band_runs_on_above_it():
    u = np.arange(-16.0, 14.0 + 1e-9, 0.1)
    v = np.arange(-5.0, 12.0 + 1e-9, 0.1)
    uu, vv = np.meshgrid(u, v)
    p = np.full(uu.shape, 0.8)  # marrow, fat
    p[(vv >= 0) & (vv <= 6) & (uu < 0)] = 0.6  # cartilage
    body = (uu >= -10) & (uu <= 0) & (vv >= 0.5) & (vv <= 1.5 + 3.5 * (uu + 10) / 10)
    p[body] = 0.05
    edge = (uu > -0.3) & (uu <= 0.8)
    p[edge & (vv >= 0.5) & (vv <= 4.8)] = 0.3  # grey tissue at the body's end
    p[edge & (vv >= -0.3) & (vv < 0.5)] = 0.05  # cortex corner
    p[(uu > -0.3) & (uu <= 3.0) & (vv > 4.8) & (vv <= 6.3)] = 0.05  # band above the joint
    fem = (vv >= 7) & (uu < 0)
    res = find_wedge(ndi.gaussian_filter(p, 1.0), fem, u_mm=u, v_mm=v)
    assert res is not None
    assert -0.8 <= res.outer_uv[0] <= 0.3, res  # the body ends at u = -0.3 mm
    assert res.outer_uv[1] < 4.5, res  # on the joint, not on the band
