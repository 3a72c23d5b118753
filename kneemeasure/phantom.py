"""Synthetic coronal knee MRI series with exact ground truth.

The knee is modelled in physical millimetres of a coronal plane and rendered
with supersampled partial volume, so tissue edges are sub-pixel accurate for any
(also anisotropic) pixel spacing. The phantoms are the regression set of
kneemeasure and the ground truth for detection accuracy.

Coordinate frames (all in mm):

* **bone frame** ``(u, v)``: ``u`` runs along the plateau, ``+u`` = medial,
  ``v`` runs down (toward the feet). The medial tibial plateau is the straight
  line ``v = 0``; the tibial eminence is centred on ``u = 0``.
* **soft frame**: the bone frame rotated by ``plateau_tilt_deg`` (positive =
  the medial side lower, varus-like). Skin, fat and muscle are defined here, so
  the tilt moves the joint but not the leg outline.
* **image frame** ``(col_mm, row_mm)``: the soft frame mirrored so that medial
  points toward ``medial_col_sign``, shifted by ``knee_offset_mm`` and rotated by
  ``rotation_deg`` (positive = counter-clockwise as displayed) about the image
  centre. Pixel ``(r, c)`` has its centre at ``(c * col_spacing, r * row_spacing)``.

Truth (medial meniscal extrusion, MME) is built exactly in the bone frame: the
tibial margin is the corner ``(u_M, 0)`` where the plateau line meets the
medial cortex line ``u = u_M`` (marginal osteophytes excluded); the meniscal
body's outermost point lies at ``u_M + extrusion_mm``. Both map to pixels by
the same rigid transform, so the signed distance along the plateau direction is
``extrusion_mm`` to rounding error.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from kneemeasure.errors import UsageError

# --------------------------------------------------------------------------- tissues
AIR, FAT, MUSCLE, MARROW, CORTEX, CARTILAGE, MENISCUS, LIGAMENT, FLUID, CAPSULE, DEGEN = range(11)
N_TISSUES = 11

#: Relative signal of each tissue (index = label above) per contrast, max ~1.
CONTRASTS: dict[str, tuple[float, ...]] = {
    #        air   fat   musc  marrow cortex cart  menis  lig   fluid capsule degen
    "t1": (0.00, 0.95, 0.33, 0.88, 0.04, 0.48, 0.06, 0.07, 0.22, 0.52, 0.30),
    "pd": (0.00, 0.88, 0.38, 0.74, 0.05, 0.62, 0.08, 0.09, 0.70, 0.55, 0.55),
    "pdfs": (0.00, 0.14, 0.30, 0.11, 0.03, 0.58, 0.06, 0.07, 0.95, 0.36, 0.72),
    "dess": (0.00, 0.18, 0.20, 0.09, 0.02, 0.72, 0.05, 0.05, 1.00, 0.30, 0.60),
}
_DESCRIPTIONS = {"t1": "T1 COR", "pd": "PD COR", "pdfs": "PD FS COR", "dess": "DESS COR"}
#: Relative amplitude of the smooth texture per tissue (marrow trabeculae, fat, muscle).
_TEXTURE = np.array([0.0, 0.04, 0.07, 0.08, 0.0, 0.03, 0.0, 0.0, 0.02, 0.05, 0.0])

TRUTH_COLUMNS: tuple[str, ...] = (
    "series_dir",
    "series_instance_uid",
    "laterality",
    "contrast",
    "row_spacing_mm",
    "col_spacing_mm",
    "rows",
    "cols",
    "n_slices",
    "slice_spacing_mm",
    "ref_index",
    "ref_instance_number",
    "plateau_row_px",
    "plateau_col_px",
    "meniscus_row_px",
    "meniscus_col_px",
    "meniscus_inner_row_px",
    "meniscus_inner_col_px",
    "plateau_dir_row",
    "plateau_dir_col",
    "extrusion_mm",
    "meniscal_width_mm",
    "lateral_plateau_row_px",
    "lateral_plateau_col_px",
    "lateral_meniscus_row_px",
    "lateral_meniscus_col_px",
    "lateral_extrusion_mm",
    "lateral_meniscal_width_mm",
    "max_extrusion_mm",
    "max_extrusion_instance",
    "medial_col_sign",
    "fibula_col_sign",
    "osteophyte_mm",
    "rotation_deg",
    "plateau_tilt_deg",
    "noise",
    "bias",
    "effusion",
    "degenerated",
    "flip_columns",
    "reverse_instances",
    "rescale_slope",
    "rescale_intercept",
    "transfer_syntax",
    "include_laterality_tag",
    "seed",
)

_TRANSFER_SYNTAXES = ("explicit", "rle", "jpeg2000")


# --------------------------------------------------------------------------- API types
@dataclass
class PhantomSpec:
    """Everything that defines one synthetic series (all lengths in mm).

    Attributes
    ----------
    laterality : str
        ``"R"`` or ``"L"``.
    contrast : str
        ``"t1"``, ``"pd"``, ``"pdfs"`` or ``"dess"``.
    extrusion_mm, lateral_extrusion_mm : float
        Signed truth extrusion on the reference slice (negative = inside the margin).
    rows, cols : int
        Matrix size.
    row_spacing_mm, col_spacing_mm : float
        Pixel Spacing (0028,0030) = row spacing \\ column spacing.
    n_slices : int
    slice_spacing_mm : float
        Distance between slice centres along y.
    noise : float
        Noise standard deviation as a fraction of the brightest tissue signal.
    bias : float
        Amplitude of the smooth multiplicative bias field (0.15 = +-15 %).
    rotation_deg : float
        In-plane rotation of the whole anatomy about the image centre
        (counter-clockwise as displayed).
    plateau_tilt_deg : float
        Tilt of the bony knee against the leg outline; positive lowers the medial side.
    osteophyte_mm : float
        Length of a marginal spur beyond the medial tibial margin (excluded from truth).
    effusion, degenerated : bool
        Joint fluid around the menisci / a bright intrasubstance streak in the medial meniscus.
    include_laterality_tag : bool
        Write Laterality (0020,0060).
    reverse_instances : bool
        InstanceNumber 1 at the far end of the position order.
    flip_columns : bool
        IOP (-1,0,0, 0,0,-1) instead of (1,0,0, 0,0,-1).
    seed : int
        Seeds noise, texture, bias, file names and UIDs.
    meniscal_width_mm, meniscal_height_mm : float
        Medial meniscal body width (outer edge to apex) and height at the base.
    lateral_meniscal_width_mm, lateral_meniscal_height_mm : float
    mcl_gap_mm : float
        Soft tissue between the meniscus' outer edge and the MCL (>= 1 mm).
    knee_scale : float
        Scales the mediolateral size of the bones.
    knee_offset_mm : (float, float)
        (row_mm, col_mm) shift of the joint centre from the image centre.
    ref_offset : int
        Reference (spine-apex) slice = middle slice + ``ref_offset`` (position order).
    slice_thickness_mm : float or None
        SliceThickness (0018,0050); default 0.85 x slice spacing.
    rescale_slope, rescale_intercept : float
        Modality LUT written to the files (stored = (value - intercept) / slope).
    name : str
        Series folder name used by :func:`write_samples`.
    """

    laterality: str = "R"
    contrast: str = "pd"
    extrusion_mm: float = 2.0
    lateral_extrusion_mm: float = 1.0
    rows: int = 256
    cols: int = 256
    row_spacing_mm: float = 0.5
    col_spacing_mm: float = 0.5
    n_slices: int = 16
    slice_spacing_mm: float = 3.5
    noise: float = 0.03
    bias: float = 0.15
    rotation_deg: float = 0.0
    plateau_tilt_deg: float = 0.0
    osteophyte_mm: float = 0.0
    effusion: bool = False
    degenerated: bool = False
    include_laterality_tag: bool = True
    reverse_instances: bool = False
    flip_columns: bool = False
    seed: int = 0
    meniscal_width_mm: float = 10.0
    meniscal_height_mm: float = 6.0
    lateral_meniscal_width_mm: float = 9.5
    lateral_meniscal_height_mm: float = 5.5
    mcl_gap_mm: float = 1.5
    knee_scale: float = 1.0
    knee_offset_mm: tuple[float, float] = (0.0, 0.0)
    ref_offset: int = 0
    slice_thickness_mm: float | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    name: str = "phantom"


@dataclass
class PhantomTruth:
    """Exact ground truth of one phantom series.

    Slice indices are in position order (ascending position along the slice
    normal = column direction x row direction), the order of :func:`make_volume`.
    Points are ``(row, col)`` pixels; directions are unit vectors in physical
    ``(row_mm, col_mm)`` space.
    """

    ref_index: int
    ref_instance_number: int
    plateau_rc: tuple[float, float]
    meniscus_rc: tuple[float, float]
    meniscus_inner_rc: tuple[float, float]
    plateau_dir_rc: tuple[float, float]
    extrusion_mm: float
    meniscal_width_mm: float
    lateral_plateau_rc: tuple[float, float]
    lateral_meniscus_rc: tuple[float, float]
    lateral_meniscus_inner_rc: tuple[float, float]
    lateral_plateau_dir_rc: tuple[float, float]
    lateral_extrusion_mm: float
    lateral_meniscal_width_mm: float
    medial_col_sign: int
    fibula_col_sign: int
    slice_extrusion_mm: list[float]
    instance_numbers: list[int] = field(default_factory=list)
    slice_positions_mm: list[float] = field(default_factory=list)
    spine_height_mm: list[float] = field(default_factory=list)
    osteophyte_tip_rc: tuple[float, float] | None = None

    @property
    def max_extrusion_mm(self) -> float:
        """Largest per-slice medial extrusion."""
        return float(np.nanmax(self.slice_extrusion_mm))

    @property
    def max_extrusion_index(self) -> int:
        """Position-order index of the slice with the largest extrusion."""
        return int(np.nanargmax(self.slice_extrusion_mm))


# --------------------------------------------------------------------------- geometry
@dataclass
class _Slice:
    """Anatomy parameters of one slice (bone frame, mm)."""

    dy: float  # y - y_ref, + = posterior
    w: float  # mediolateral scale of the bones
    u_med: float  # medial tibial margin
    u_lat: float  # lateral tibial margin (at u = -u_lat)
    spine_h: float
    ucc: float  # condyle centre |u|
    ca: float  # condyle half-width
    cb: float  # condyle half-height
    vc: float  # condyle centre v
    shaft_t: float  # tibial shaft half-width
    med: dict | None  # medial meniscus
    lat: dict | None  # lateral meniscus
    fib_r: float  # fibular head radius (0 = absent)
    fib_u: float
    cruciate: bool
    osteo: float
    mcl_u: np.ndarray  # inner edge of MCL sampled on _MCL_V
    leg_hw: float


_T_CART = 2.0  # cartilage thickness
_T_EDGE = 0.7  # tibial cartilage thickness at the margin
_GAP0 = 0.5  # fluid film between the cartilage layers
_T_CORT = 1.0  # cortex thickness
_FIB_V = 22.0
_MCL_V = np.arange(-70.0, 90.0, 0.5)
_P_COND = 2.6  # superellipse exponent of the condyles (flatter than an ellipse)


def _superell(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``|x/a|^p + |y/b|^p`` with the condyle exponent."""
    return np.abs(x / a) ** _P_COND + np.abs(y / b) ** _P_COND


def _fem_surface(a: np.ndarray | float, sl: _Slice) -> np.ndarray:
    """v of the femoral cartilage surface (lower envelope) at ``a`` = |u|; -1e9 where none."""
    d = np.abs(np.asarray(a, dtype=float) - sl.ucc) / (sl.ca + _T_CART)
    arg = 1.0 - np.clip(d, 0.0, 1.0) ** _P_COND
    surf = sl.vc + (sl.cb + _T_CART) * arg ** (1.0 / _P_COND)
    return np.where(d < 1.0, surf, -1e9)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _tib_cart(a: np.ndarray, margin: np.ndarray | float) -> np.ndarray:
    """Tibial cartilage thickness at distance ``a`` = |u| from the eminence centre."""
    inner = np.clip((a - 7.0) / 2.0, 0.0, 1.0)
    edge = _T_EDGE + (_T_CART - _T_EDGE) * np.clip((margin - a) / 4.0, 0.0, 1.0)
    return np.where(a <= margin, inner * edge, 0.0)


def _men_low(a: np.ndarray | float, margin: float) -> np.ndarray:
    """Lower surface of a meniscus (v) at distance ``a`` from the centre."""
    a = np.asarray(a, dtype=float)
    return np.where(a <= margin, -_tib_cart(a, margin), -_T_EDGE + 0.25 * (a - margin))


def _meniscus(margin: float, extr: float, width: float, height: float, f: float) -> dict | None:
    """Meniscal wedge parameters; ``f`` in [0, 1] is the body factor of the slice."""
    if f < 0.2:
        return None
    h = height * (0.55 + 0.45 * f)
    wd = width * (0.6 + 0.4 * f)
    u_o = margin + extr
    u_i = u_o - wd
    v_lo = float(_men_low(u_o, margin))
    return {
        "u_o": u_o,
        "u_i": u_i,
        "W": wd,
        "H": h,
        "v_mid": v_lo - h / 2.0,
        "k": 0.06,
        "margin": margin,
        "extr": extr,
    }


def _slice_geometry(spec: PhantomSpec, dy: float) -> _Slice:
    ks = spec.knee_scale
    w = ks * math.sqrt(max(0.25, 1.0 - (dy / 48.0) ** 2))
    u_med = 38.0 * w
    u_lat = 37.0 * w
    spine_h = 7.0 * math.exp(-(dy**2) / (2 * 5.0**2))
    cb = 16.0
    vc = -(_T_CART + _GAP0 + _T_CART) - cb
    f_body = float(np.clip(1.0 - (abs(dy) - 10.0) / 12.0, 0.0, 1.0))
    e_med = spec.extrusion_mm + 0.04 * max(0.0, -dy)  # anterior body a little more extruded
    e_lat = spec.lateral_extrusion_mm + 0.02 * max(0.0, -dy)
    med = _meniscus(u_med, e_med, spec.meniscal_width_mm, spec.meniscal_height_mm, f_body)
    lat = _meniscus(
        u_lat, e_lat, spec.lateral_meniscal_width_mm, spec.lateral_meniscal_height_mm, f_body
    )
    fib_r2 = 10.5**2 - (dy - 17.0) ** 2
    fib_r = math.sqrt(fib_r2) if (fib_r2 > 0 and dy > 0) else 0.0
    sl = _Slice(
        dy=dy,
        w=w,
        u_med=u_med,
        u_lat=u_lat,
        spine_h=spine_h,
        ucc=22.0 * w,
        ca=20.0 * w,
        cb=cb,
        vc=vc,
        shaft_t=min(19.0 * ks, 0.8 * u_lat),
        med=med,
        lat=lat,
        fib_r=fib_r,
        fib_u=-(u_lat + 0.5),
        cruciate=abs(dy) < 11.0,
        osteo=max(0.0, spec.osteophyte_mm),
        mcl_u=np.zeros(0),
        leg_hw=54.0 * ks * math.sqrt(max(0.3, 1.0 - (dy / 75.0) ** 2)),
    )
    sl.mcl_u = _mcl_inner(sl, spec.mcl_gap_mm)
    return sl


def _tib_hw(v: np.ndarray, margin: np.ndarray | float, flat: np.ndarray | float, shaft: float):
    return margin - (margin - shaft) * _smoothstep((v - flat) / 40.0)


def _fem_hw(v: np.ndarray, sl: _Slice) -> np.ndarray:
    top = (sl.ucc + sl.ca) - ((sl.ucc + sl.ca) - 27.0 * sl.w) * _smoothstep((sl.vc - v) / 35.0)
    return top


def _mcl_inner(sl: _Slice, gap: float) -> np.ndarray:
    """Inner edge (u) of the MCL along ``_MCL_V``: off the bones, bowed around the meniscus."""
    v = _MCL_V
    cond = np.where(
        np.abs(v - sl.vc) < sl.cb,
        sl.ucc
        + sl.ca * np.clip(1.0 - np.abs((v - sl.vc) / sl.cb) ** _P_COND, 0.0, 1.0) ** (1 / _P_COND),
        0.0,
    )
    fem = np.where(v <= sl.vc, _fem_hw(v, sl), cond)
    tib = np.where(v >= 0.0, _tib_hw(v, sl.u_med, 12.0, sl.shaft_t), 0.0)
    near = np.where((v > sl.vc) & (v < 0.0), sl.u_med, 0.0)
    bone = np.maximum(np.maximum(fem, tib), near)
    bone = ndimage.gaussian_filter1d(bone, 6.0, mode="nearest")  # 3 mm
    inner = bone + 1.5
    m = sl.med
    if m is not None:
        half = m["H"] / 2.0 + 0.5
        excess = np.maximum(0.0, np.abs(v - m["v_mid"]) - half)
        bow = m["u_o"] + max(gap, 1.0) - 0.08 * excess**2
        inner = np.maximum(inner, bow)
    return inner


# --------------------------------------------------------------------------- labels
def _labels(
    us: np.ndarray, vs: np.ndarray, sl: _Slice, spec: PhantomSpec, tilt: float
) -> np.ndarray:
    """Tissue label at soft-frame points ``(us, vs)`` (mm), any array shape."""
    ct, st = math.cos(tilt), math.sin(tilt)
    u = ct * us + st * vs
    v = -st * us + ct * vs
    a = np.abs(u)
    medial = u >= 0.0
    lab = np.zeros(us.shape, dtype=np.int8)

    # leg outline: subcutaneous fat, muscle above and below the joint
    hw_leg = sl.leg_hw - 0.05 * vs
    in_leg = np.abs(us) <= hw_leg
    lab[in_leg] = FAT
    au = np.abs(us)
    thigh = ((au - (hw_leg - 19.0)) / 13.0) ** 2 + ((vs + 62.0) / 42.0) ** 2 < 1.0
    calf = ((au - (hw_leg - 17.0)) / 11.0) ** 2 + ((vs - 78.0) / 50.0) ** 2 < 1.0
    lab[in_leg & (au < hw_leg - 6.0) & (thigh | calf)] = MUSCLE

    margin = np.where(medial, sl.u_med, sl.u_lat)
    flat = np.where(medial, 12.0, 5.0)

    # joint periphery: capsule / synovium around the menisci
    mcl_in = np.interp(v, _MCL_V, sl.mcl_u)
    for m, side in ((sl.med, medial), (sl.lat, ~medial)):
        if m is None:
            continue
        outer = mcl_in if m is sl.med else m["u_o"] + 2.5
        rx = 6.0 + (2.0 if spec.effusion else 0.0)
        ry = m["H"] / 2.0 + (6.0 if spec.effusion else 3.5)
        zone = side & (((a - m["u_o"]) / rx) ** 2 + ((v - m["v_mid"]) / ry) ** 2 < 1.0)
        zone &= a <= outer
        lab[zone] = FLUID if spec.effusion else CAPSULE
        if spec.effusion:  # recess pocket above the meniscus, along the condyle
            pocket = ((a - (outer - 3.5)) / 3.5) ** 2 + ((v - m["v_mid"] + 11.0) / 7.0) ** 2 < 1
            lab[side & pocket & (a <= outer)] = FLUID

    # femur: two condyles, shaft, intercondylar notch
    def femur(off: float) -> np.ndarray:
        shaft = (v <= sl.vc) & (a <= _fem_hw(v, sl) - off)
        cond = (v >= sl.vc) & (_superell(a - sl.ucc, v - sl.vc, sl.ca - off, sl.cb - off) <= 1)
        cond |= (v < sl.vc) & (
            ((a - sl.ucc) / (sl.ca - off)) ** 2 + ((v - sl.vc) / (sl.cb - off)) ** 2 <= 1
        )
        notch = (u / (9.0 * sl.w + off)) ** 2 + ((v - (sl.vc + sl.cb)) / (22.0 + off)) ** 2 < 1.0
        return (shaft | cond) & ~notch

    fem = femur(0.0)
    notch = (u / (9.0 * sl.w)) ** 2 + ((v - (sl.vc + sl.cb)) / 22.0) ** 2 < 1.0
    notch &= v < 0.0
    lab[notch & in_leg] = FAT
    fem_surf = _fem_surface(a, sl)
    fem_cart = (v > sl.vc + 4.0) & (v <= fem_surf) & ~fem & ~notch
    fem_cart &= np.abs(a - sl.ucc) < 0.9 * sl.ca
    # joint space between the cartilage layers: a thin fluid film, synovium further out
    t_c = _tib_cart(a, margin)
    gap = (a > 6.0) & (a < margin + 1.0) & (v > fem_surf) & (v < -t_c)
    lab[gap] = FLUID if spec.effusion else CAPSULE
    lab[gap & ((v < fem_surf + 0.45) | (-t_c - fem_surf < 1.2))] = FLUID
    lab[fem] = CORTEX
    lab[femur(_T_CORT)] = MARROW
    lab[fem_cart] = CARTILAGE
    if sl.cruciate:
        cru = ((u + 1.5) / 2.8) ** 2 + ((v - (sl.vc + sl.cb - 9.0)) / 7.0) ** 2 < 1.0
        lab[cru & notch] = LIGAMENT

    # tibia: plateaus (v = 0), eminence, metaphysis with a vertical medial cortex
    spine = sl.spine_h * (
        np.exp(-0.5 * ((u - 3.5) / 1.8) ** 2) + 0.85 * np.exp(-0.5 * ((u + 3.5) / 1.8) ** 2)
    )
    spine *= np.clip((9.0 - a) / 2.0, 0.0, 1.0)
    top = -spine

    def tibia(off: float) -> np.ndarray:
        inside = (v >= top + off) & (a <= _tib_hw(v, margin, flat, sl.shaft_t) - off)
        rc = max(1.0 - off, 0.0)
        if rc > 0:
            corner = (a > margin - rc) & (v < rc)
            inside &= ~corner | ((a - (margin - rc)) ** 2 + (v - rc) ** 2 <= rc * rc)
        return inside

    tib = tibia(0.0)
    lab[tib] = CORTEX
    lab[tibia(_T_CORT)] = MARROW
    lab[(v < top) & (v >= top - t_c) & (t_c > 0)] = CARTILAGE

    if sl.osteo > 0:  # marginal spur beyond the medial margin; truth margin excludes it
        o = sl.osteo
        x = u - sl.u_med
        s_top = 0.25 * x
        s_bot = (4.5 + 0.25 * x) * (1.0 - x / o) + (0.25 * x + 0.9) * (x / o)
        spur = medial & (x > -0.5) & (x <= o) & (v >= s_top) & (v <= s_bot)
        lab[spur] = CORTEX
        core = medial & (x > -1.5) & (x <= o - 1.0) & (v >= s_top + 0.8) & (v <= s_bot - 0.8)
        lab[core] = MARROW

    if sl.fib_r > 0:  # fibular head and neck below the lateral plateau (posterior slices)
        d = np.hypot(u - sl.fib_u, v - _FIB_V)
        neck = (np.abs(u - sl.fib_u) < 0.55 * sl.fib_r) & (v > _FIB_V)
        lab[(d < sl.fib_r + 0.8) & ~medial] = FAT  # proximal tibiofibular joint
        lab[((d < sl.fib_r) | neck) & ~medial] = CORTEX
        inner = (d < sl.fib_r - _T_CORT) | (
            (np.abs(u - sl.fib_u) < 0.55 * sl.fib_r - _T_CORT) & (v > _FIB_V)
        )
        lab[inner & ~medial] = MARROW

    # menisci: wedges with the base outward, between the cartilage layers
    for m, side in ((sl.med, medial), (sl.lat, ~medial)):
        if m is None:
            continue
        low = _men_low(a, m["margin"])
        frac = np.clip((a - m["u_i"]) / m["W"], 0.0, 1.0)
        topm = np.maximum(fem_surf + 0.2, low - m["H"] * (0.3 + 0.7 * frac))
        men = side & (a >= m["u_i"]) & (a <= m["u_o"] - m["k"] * (v - m["v_mid"]) ** 2)
        men &= (v <= low) & (v >= topm) & ~fem
        lab[men] = MENISCUS
        if spec.degenerated and m is sl.med:
            streak = men & (np.abs(v - (low - 0.45 * (low - topm))) < 0.45)
            streak &= (a > m["u_i"] + 1.5) & (a < m["u_o"] - 2.0)
            lab[streak] = DEGEN

    # MCL: dark band outside the medial meniscus, bowed around it
    mcl = medial & (u >= mcl_in) & (u <= mcl_in + 2.5) & (v > -45.0) & (v < 60.0) & in_leg
    lab[mcl] = LIGAMENT
    return lab


# --------------------------------------------------------------------------- transforms
def _check(spec: PhantomSpec) -> None:
    if spec.laterality not in ("R", "L"):
        raise UsageError(f"PhantomSpec.laterality={spec.laterality!r}: use 'R' or 'L'")
    if spec.contrast not in CONTRASTS:
        raise UsageError(
            f"PhantomSpec.contrast={spec.contrast!r}: use one of {', '.join(CONTRASTS)}"
        )
    for name in ("row_spacing_mm", "col_spacing_mm", "slice_spacing_mm"):
        if not getattr(spec, name) > 0:
            raise UsageError(f"PhantomSpec.{name}={getattr(spec, name)!r}: must be > 0 mm")
    if spec.rows < 16 or spec.cols < 16 or spec.n_slices < 1:
        raise UsageError(
            f"PhantomSpec rows={spec.rows}, cols={spec.cols}, n_slices={spec.n_slices}: "
            "need rows, cols >= 16 and n_slices >= 1"
        )
    if spec.rescale_slope <= 0:
        raise UsageError(f"PhantomSpec.rescale_slope={spec.rescale_slope!r}: must be > 0")


def _medial_col_sign(spec: PhantomSpec) -> int:
    s = 1 if spec.laterality == "R" else -1
    return -s if spec.flip_columns else s


class _Frame:
    """Rigid maps between the bone frame (u, v) and image pixels (row, col)."""

    def __init__(self, spec: PhantomSpec) -> None:
        self.s = _medial_col_sign(spec)
        self.th = math.radians(spec.rotation_deg)
        self.tau = math.radians(spec.plateau_tilt_deg)
        self.dr, self.dc = spec.row_spacing_mm, spec.col_spacing_mm
        self.cx = (spec.cols - 1) * self.dc / 2.0
        self.cz = (spec.rows - 1) * self.dr / 2.0
        self.off_r, self.off_c = spec.knee_offset_mm

    def soft_from_image(self, r_mm: np.ndarray, c_mm: np.ndarray):
        x, z = c_mm - self.cx, r_mm - self.cz
        ct, st = math.cos(self.th), math.sin(self.th)
        qx = ct * x - st * z - self.off_c
        qz = st * x + ct * z - self.off_r
        return self.s * qx, qz

    def image_from_bone(self, u: float, v: float) -> tuple[float, float]:
        """Bone-frame point -> (row, col) in pixels."""
        ct, st = math.cos(self.tau), math.sin(self.tau)
        us, vs = ct * u - st * v, st * u + ct * v
        qx, qz = self.s * us + self.off_c, vs + self.off_r
        c, s = math.cos(self.th), math.sin(self.th)
        x = c * qx + s * qz
        z = -s * qx + c * qz
        return ((z + self.cz) / self.dr, (x + self.cx) / self.dc)

    def dir_from_bone(self, du: float, dv: float) -> tuple[float, float]:
        """Bone-frame direction -> unit (row_mm, col_mm)."""
        ct, st = math.cos(self.tau), math.sin(self.tau)
        us, vs = ct * du - st * dv, st * du + ct * dv
        qx, qz = self.s * us, vs
        c, s = math.cos(self.th), math.sin(self.th)
        x = c * qx + s * qz
        z = -s * qx + c * qz
        n = math.hypot(x, z)
        return (z / n, x / n)


def _n_sub(spacing: float) -> int:
    return int(np.clip(math.ceil(spacing / 0.17), 2, 10))


def _render_slice(
    spec: PhantomSpec, fr: _Frame, sl: _Slice, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Partial-volume signal (rows, cols) before texture/noise, and the pixel-centre labels."""
    rows, cols = spec.rows, spec.cols
    r_mm = (np.arange(rows) * fr.dr)[:, None]
    c_mm = (np.arange(cols) * fr.dc)[None, :]
    us, vs = fr.soft_from_image(r_mm + 0 * c_mm, c_mm + 0 * r_mm)
    lab = _labels(us, vs, sl, spec, fr.tau)
    img = values[lab].astype(np.float64)

    edge = np.zeros(lab.shape, dtype=bool)
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:-1, :] |= lab[1:, :] != lab[:-1, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, 1:] != lab[:, :-1]
    # thin structures (fluid film, cortex) may fall between pixel centres near the joint
    ct, st = math.cos(fr.tau), math.sin(fr.tau)
    vb = -st * us + ct * vs
    ub = ct * us + st * vs
    edge |= (vb > -4.5) & (vb < 0.5) & (np.abs(ub) < max(sl.u_med, sl.u_lat) + 1.0)
    edge = ndimage.binary_dilation(edge, iterations=1)
    rr, cc = np.nonzero(edge)
    if rr.size == 0:
        return img, lab
    nr, nc = _n_sub(fr.dr), _n_sub(fr.dc)
    orr = ((np.arange(nr) + 0.5) / nr - 0.5) * fr.dr
    occ = ((np.arange(nc) + 0.5) / nc - 0.5) * fr.dc
    sub_r = (rr * fr.dr)[:, None, None] + orr[None, :, None]
    sub_c = (cc * fr.dc)[:, None, None] + occ[None, None, :]
    sub_r, sub_c = np.broadcast_arrays(sub_r, sub_c)
    us2, vs2 = fr.soft_from_image(sub_r, sub_c)
    lab2 = _labels(us2, vs2, sl, spec, fr.tau)
    img[rr, cc] = values[lab2].reshape(rr.size, -1).mean(axis=1)
    return img, lab


def _slice_ys(spec: PhantomSpec) -> tuple[np.ndarray, int]:
    """Slice y (mm, relative to y_ref) in position order, and the reference index."""
    n = spec.n_slices
    ref = (n - 1) // 2 + spec.ref_offset
    if not 0 <= ref < n:
        raise UsageError(
            f"PhantomSpec.ref_offset={spec.ref_offset} puts the reference slice outside "
            f"0..{n - 1}; use a smaller offset"
        )
    k = np.arange(n) - ref
    # normal = col dir x row dir: +y (posterior) for IOP (1,0,0,0,0,-1), -y when flipped
    normal_y = -1.0 if spec.flip_columns else 1.0
    return normal_y * k * spec.slice_spacing_mm, ref


def make_volume(spec: PhantomSpec) -> tuple[np.ndarray, PhantomTruth]:
    """Render a phantom series and its exact truth.

    Parameters
    ----------
    spec : PhantomSpec

    Returns
    -------
    volume : ndarray, shape (n_slices, rows, cols), float32
        Signal (brightest tissue ~1000) in position order (ascending position along
        the slice normal), with texture, bias field and Rician noise.
    truth : PhantomTruth
    """
    _check(spec)
    rng = np.random.default_rng([spec.seed, 7])
    values = np.array(CONTRASTS[spec.contrast], dtype=np.float64)
    fr = _Frame(spec)
    dys, ref = _slice_ys(spec)
    n, rows, cols = spec.n_slices, spec.rows, spec.cols

    vol = np.empty((n, rows, cols), dtype=np.float32)
    slices = [_slice_geometry(spec, float(dy)) for dy in dys]
    # bias field: smooth, low order, random phases; shared across slices with a slow drift
    yy, xx = np.mgrid[0:rows, 0:cols]
    yn, xn = yy / max(rows - 1, 1) - 0.5, xx / max(cols - 1, 1) - 0.5
    ph = rng.uniform(0, 2 * np.pi, size=4)
    field_ = np.cos(2.2 * xn + ph[0]) * np.cos(1.7 * yn + ph[1]) + 0.6 * np.cos(
        3.1 * (xn + yn) + ph[2]
    )
    field_ = field_ - field_.mean()
    field_ /= max(np.abs(field_).max(), 1e-9)
    sig_tex = (0.7 / fr.dr, 0.7 / fr.dc)
    sigma = spec.noise * values.max() * 1000.0
    for i, sl in enumerate(slices):
        img, lab = _render_slice(spec, fr, sl, values)
        tex = ndimage.gaussian_filter(rng.standard_normal((rows, cols)), sig_tex)
        tex /= max(tex.std(), 1e-9)
        img *= 1.0 + _TEXTURE[lab] * tex
        drift = 1.0 + 0.2 * math.sin(0.15 * i + ph[3])
        img *= 1.0 + spec.bias * drift * field_
        img *= 1000.0
        if sigma > 0:
            n1 = rng.normal(0.0, sigma, size=img.shape)
            n2 = rng.normal(0.0, sigma, size=img.shape)
            img = np.sqrt((img + n1) ** 2 + n2**2)  # Rician magnitude
        vol[i] = img.astype(np.float32)

    truth = _truth(spec, fr, slices, ref)
    return vol, truth


def _truth(spec: PhantomSpec, fr: _Frame, slices: list[_Slice], ref: int) -> PhantomTruth:
    sl = slices[ref]
    m, lm = sl.med, sl.lat
    if m is None or lm is None:  # cannot happen: the body factor is 1 at dy = 0
        raise UsageError("reference slice has no meniscal body; check PhantomSpec")

    def apex_v(mm: dict) -> float:
        low = float(_men_low(mm["u_i"], mm["margin"]))
        return low - 0.075 * mm["H"]

    n = spec.n_slices
    inst = list(range(n, 0, -1)) if spec.reverse_instances else list(range(1, n + 1))
    tip = None
    if spec.osteophyte_mm > 0:
        tip = fr.image_from_bone(sl.u_med + spec.osteophyte_mm, 0.25 * spec.osteophyte_mm + 0.45)
    _, dys_ref = _slice_ys(spec)
    return PhantomTruth(
        ref_index=ref,
        ref_instance_number=inst[ref],
        plateau_rc=fr.image_from_bone(sl.u_med, 0.0),
        meniscus_rc=fr.image_from_bone(m["u_o"], m["v_mid"]),
        meniscus_inner_rc=fr.image_from_bone(m["u_i"], apex_v(m)),
        plateau_dir_rc=fr.dir_from_bone(1.0, 0.0),
        extrusion_mm=float(m["u_o"] - sl.u_med),
        meniscal_width_mm=float(m["W"]),
        lateral_plateau_rc=fr.image_from_bone(-sl.u_lat, 0.0),
        lateral_meniscus_rc=fr.image_from_bone(-lm["u_o"], lm["v_mid"]),
        lateral_meniscus_inner_rc=fr.image_from_bone(-lm["u_i"], apex_v(lm)),
        lateral_plateau_dir_rc=fr.dir_from_bone(-1.0, 0.0),
        lateral_extrusion_mm=float(lm["u_o"] - sl.u_lat),
        lateral_meniscal_width_mm=float(lm["W"]),
        medial_col_sign=fr.s,
        fibula_col_sign=-fr.s,
        slice_extrusion_mm=[
            float(s.med["extr"]) if s.med is not None else float("nan") for s in slices
        ],
        instance_numbers=inst,
        slice_positions_mm=[float(s.dy) for s in slices],
        spine_height_mm=[float(s.spine_h) for s in slices],
        osteophyte_tip_rc=tip,
    )


def label_slice(spec: PhantomSpec, index: int) -> np.ndarray:
    """Tissue labels at the pixel centres of one slice (for tests and figures).

    Returns
    -------
    ndarray, shape (rows, cols), int8
        Labels ``AIR`` ... ``DEGEN`` (module constants).
    """
    _check(spec)
    fr = _Frame(spec)
    dys, _ = _slice_ys(spec)
    sl = _slice_geometry(spec, float(dys[index]))
    r_mm = (np.arange(spec.rows) * fr.dr)[:, None] + np.zeros((1, spec.cols))
    c_mm = (np.arange(spec.cols) * fr.dc)[None, :] + np.zeros((spec.rows, 1))
    us, vs = fr.soft_from_image(r_mm, c_mm)
    return _labels(us, vs, sl, spec, fr.tau)


# --------------------------------------------------------------------------- DICOM
def _uid(spec: PhantomSpec, *parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(
        entropy_srcs=["kneemeasure-phantom", str(spec.seed), spec.name, *map(str, parts)]
    )


def write_series(
    spec: PhantomSpec,
    outdir: Path,
    *,
    series_uid: str | None = None,
    transfer_syntax: str = "explicit",
) -> tuple[list[Path], dict]:
    """Write a phantom as single-frame MR Image Storage files.

    Parameters
    ----------
    spec : PhantomSpec
    outdir : Path
        Folder for the files (created); file names are random-looking and not
        sorted by position.
    series_uid : str, optional
        SeriesInstanceUID; by default derived deterministically from the spec.
    transfer_syntax : str
        ``"explicit"`` (Explicit VR Little Endian), ``"rle"`` (RLE Lossless) or
        ``"jpeg2000"`` (JPEG 2000 lossless, needs pylibjpeg-openjpeg).

    Returns
    -------
    paths : list of Path
        In position order.
    truth_row : dict
        One row for ``truth.csv`` (keys :data:`TRUTH_COLUMNS`); ``series_dir`` is
        the folder path as given.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        MRImageStorage,
        RLELossless,
    )

    if transfer_syntax not in _TRANSFER_SYNTAXES:
        raise UsageError(
            f"transfer_syntax={transfer_syntax!r}: use one of {', '.join(_TRANSFER_SYNTAXES)}"
        )
    vol, truth = make_volume(spec)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    study_uid = _uid(spec, "study")
    series_uid = series_uid or _uid(spec, "series")
    frame_uid = _uid(spec, "frame")
    stored = np.rint((vol - spec.rescale_intercept) / spec.rescale_slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise UsageError(
            f"rescale slope {spec.rescale_slope} / intercept {spec.rescale_intercept} map the "
            "signal outside uint16; use slope <= 1 and intercept <= 0"
        )
    stored = stored.astype(np.uint16)
    bits = max(12, int(stored.max()).bit_length())
    lo, hi = np.percentile(vol, [1, 99.5])

    col_dir = (-1.0, 0.0, 0.0) if spec.flip_columns else (1.0, 0.0, 0.0)
    row_dir = (0.0, 0.0, -1.0)
    dys, _ = _slice_ys(spec)
    y_centre = 25.0  # patient y of the reference slice
    x_centre, z_centre = 0.0, 0.0
    half_c = (spec.cols - 1) / 2.0 * spec.col_spacing_mm
    half_r = (spec.rows - 1) / 2.0 * spec.row_spacing_mm
    normal_y = -1.0 if spec.flip_columns else 1.0

    rng = np.random.default_rng([spec.seed, 11])
    names = [f"MR{int(x):08X}" for x in rng.integers(0, 2**32, size=spec.n_slices)]
    while spec.n_slices > 2 and (names == sorted(names) or names == sorted(names, reverse=True)):
        rng.shuffle(names)
    desc = f"{_DESCRIPTIONS[spec.contrast]} (phantom)"
    thickness = spec.slice_thickness_mm or round(0.85 * spec.slice_spacing_mm, 3)
    paths: list[Path] = []
    for i in range(spec.n_slices):
        y = y_centre + float(dys[i])
        ipp = [
            x_centre - half_c * col_dir[0] - half_r * row_dir[0],
            y,
            z_centre - half_c * col_dir[2] - half_r * row_dir[2],
        ]
        sop_uid = _uid(spec, "sop", i)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "MR"
        ds.Manufacturer = "kneemeasure phantom"
        ds.PatientName = "PHANTOM^KNEE"
        ds.PatientID = "PHANTOM-001"
        ds.StudyDate = "20250101"
        ds.StudyID = "1"
        ds.SeriesNumber = 3
        ds.AccessionNumber = ""
        ds.BodyPartExamined = "KNEE"
        ds.SeriesDescription = desc
        ds.ProtocolName = desc
        if spec.include_laterality_tag:
            ds.Laterality = spec.laterality
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.MRAcquisitionType = "2D"
        ds.InstanceNumber = truth.instance_numbers[i]
        ds.ImageOrientationPatient = [*col_dir, *row_dir]
        ds.ImagePositionPatient = [round(float(x), 6) for x in ipp]
        ds.SliceLocation = round(normal_y * y, 6)
        ds.PixelSpacing = [spec.row_spacing_mm, spec.col_spacing_mm]
        ds.SliceThickness = thickness
        ds.SpacingBetweenSlices = spec.slice_spacing_mm
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = spec.rows, spec.cols
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        ds.RescaleSlope = spec.rescale_slope
        ds.RescaleIntercept = spec.rescale_intercept
        ds.RescaleType = "US"
        ds.WindowCenter = round(float((lo + hi) / 2), 1)
        ds.WindowWidth = round(float(hi - lo), 1)
        ds.PixelData = stored[i].tobytes()
        if transfer_syntax == "rle":
            ds.compress(RLELossless)
        elif transfer_syntax == "jpeg2000":
            ds.compress(JPEG2000Lossless)
        path = outdir / names[i]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)

    row = truth_row(spec, truth, series_dir=str(outdir), series_uid=series_uid)
    row["transfer_syntax"] = transfer_syntax
    return paths, row


def truth_row(
    spec: PhantomSpec, truth: PhantomTruth, *, series_dir: str = "", series_uid: str = ""
) -> dict:
    """One ``truth.csv`` row (keys :data:`TRUTH_COLUMNS`) with values as Python scalars."""
    t = truth
    r: dict = {
        "series_dir": series_dir,
        "series_instance_uid": series_uid,
        "laterality": spec.laterality,
        "contrast": spec.contrast,
        "row_spacing_mm": spec.row_spacing_mm,
        "col_spacing_mm": spec.col_spacing_mm,
        "rows": spec.rows,
        "cols": spec.cols,
        "n_slices": spec.n_slices,
        "slice_spacing_mm": spec.slice_spacing_mm,
        "ref_index": t.ref_index,
        "ref_instance_number": t.ref_instance_number,
        "plateau_row_px": t.plateau_rc[0],
        "plateau_col_px": t.plateau_rc[1],
        "meniscus_row_px": t.meniscus_rc[0],
        "meniscus_col_px": t.meniscus_rc[1],
        "meniscus_inner_row_px": t.meniscus_inner_rc[0],
        "meniscus_inner_col_px": t.meniscus_inner_rc[1],
        "plateau_dir_row": t.plateau_dir_rc[0],
        "plateau_dir_col": t.plateau_dir_rc[1],
        "extrusion_mm": t.extrusion_mm,
        "meniscal_width_mm": t.meniscal_width_mm,
        "lateral_plateau_row_px": t.lateral_plateau_rc[0],
        "lateral_plateau_col_px": t.lateral_plateau_rc[1],
        "lateral_meniscus_row_px": t.lateral_meniscus_rc[0],
        "lateral_meniscus_col_px": t.lateral_meniscus_rc[1],
        "lateral_extrusion_mm": t.lateral_extrusion_mm,
        "lateral_meniscal_width_mm": t.lateral_meniscal_width_mm,
        "max_extrusion_mm": t.max_extrusion_mm,
        "max_extrusion_instance": t.instance_numbers[t.max_extrusion_index],
        "medial_col_sign": t.medial_col_sign,
        "fibula_col_sign": t.fibula_col_sign,
        "osteophyte_mm": spec.osteophyte_mm,
        "rotation_deg": spec.rotation_deg,
        "plateau_tilt_deg": spec.plateau_tilt_deg,
        "noise": spec.noise,
        "bias": spec.bias,
        "effusion": spec.effusion,
        "degenerated": spec.degenerated,
        "flip_columns": spec.flip_columns,
        "reverse_instances": spec.reverse_instances,
        "rescale_slope": spec.rescale_slope,
        "rescale_intercept": spec.rescale_intercept,
        "transfer_syntax": "",
        "include_laterality_tag": spec.include_laterality_tag,
        "seed": spec.seed,
    }
    return r


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


# --------------------------------------------------------------------------- sample set
#: The committed sample set: (spec, transfer syntax).
SAMPLE_SPECS: tuple[tuple[PhantomSpec, str], ...] = (
    (
        PhantomSpec(
            name="r_pd_iso_mme1p5",
            laterality="R",
            contrast="pd",
            extrusion_mm=1.5,
            rows=200,
            cols=200,
            row_spacing_mm=0.625,
            col_spacing_mm=0.625,
            n_slices=12,
            slice_spacing_mm=3.5,
            seed=101,
        ),
        "explicit",
    ),
    (
        PhantomSpec(
            name="l_t1_aniso_mme3p8",
            laterality="L",
            contrast="t1",
            extrusion_mm=3.8,
            lateral_extrusion_mm=1.6,
            rows=288,
            cols=176,
            row_spacing_mm=0.45,
            col_spacing_mm=0.75,
            n_slices=12,
            slice_spacing_mm=3.8,
            rotation_deg=4.0,
            ref_offset=1,
            seed=102,
        ),
        "jpeg2000",
    ),
    (
        PhantomSpec(
            name="r_pdfs_rle_mme5p0",
            laterality="R",
            contrast="pdfs",
            extrusion_mm=5.0,
            lateral_extrusion_mm=2.0,
            rows=192,
            cols=192,
            row_spacing_mm=0.65,
            col_spacing_mm=0.65,
            n_slices=12,
            slice_spacing_mm=3.5,
            plateau_tilt_deg=3.0,
            effusion=True,
            seed=103,
        ),
        "rle",
    ),
    (
        PhantomSpec(
            name="l_pd_nolat_rev_mme-0p8",
            laterality="L",
            contrast="pd",
            extrusion_mm=-0.8,
            lateral_extrusion_mm=-0.5,
            rows=192,
            cols=192,
            row_spacing_mm=0.65,
            col_spacing_mm=0.65,
            n_slices=12,
            slice_spacing_mm=3.5,
            include_laterality_tag=False,
            reverse_instances=True,
            knee_offset_mm=(-6.0, 5.0),
            seed=104,
        ),
        "explicit",
    ),
    (
        PhantomSpec(
            name="r_t1_slope_j2k_mme2p6",
            laterality="R",
            contrast="t1",
            extrusion_mm=2.6,
            rows=208,
            cols=208,
            row_spacing_mm=0.6,
            col_spacing_mm=0.6,
            n_slices=12,
            slice_spacing_mm=4.0,
            rescale_slope=0.5,
            rescale_intercept=-100.0,
            osteophyte_mm=3.0,
            degenerated=True,
            seed=105,
        ),
        "jpeg2000",
    ),
    (
        PhantomSpec(
            name="r_dess_flip_mme7p0",
            laterality="R",
            contrast="dess",
            extrusion_mm=7.0,
            lateral_extrusion_mm=2.5,
            rows=192,
            cols=192,
            row_spacing_mm=0.65,
            col_spacing_mm=0.65,
            n_slices=12,
            slice_spacing_mm=3.5,
            flip_columns=True,
            rotation_deg=-5.0,
            plateau_tilt_deg=-2.0,
            seed=106,
        ),
        "jpeg2000",
    ),
)


def write_samples(outdir: Path) -> Path:
    """Write the committed sample set (one folder per series) and ``truth.csv``.

    Parameters
    ----------
    outdir : Path
        Destination, e.g. ``sample_dicoms/``; created if needed.

    Returns
    -------
    Path
        The ``truth.csv`` path (``series_dir`` relative to its folder).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec, ts in SAMPLE_SPECS:
        _, row = write_series(spec, outdir / spec.name, transfer_syntax=ts)
        row["series_dir"] = spec.name
        rows.append(row)
    path = outdir / "truth.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(TRUTH_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row[k]) for k in TRUTH_COLUMNS})
    return path


def suite_specs(n: int | None = None, *, seed: int = 0) -> list[PhantomSpec]:
    """A varied, deterministic validation suite.

    Cycles through all contrasts, both knees, isotropic and anisotropic spacings
    (incl. a 0.3125 x 1.5 mm reformat-like grid), extrusion -1..7 mm and the
    nuisances (noise, bias, rotation, tilt, osteophytes, effusion, degeneration,
    flipped columns, reversed instances, missing laterality, knee offset).

    Parameters
    ----------
    n : int, optional
        Number of specs (default 24).
    seed : int

    Returns
    -------
    list of PhantomSpec
    """
    n = 24 if n is None else n
    rng = np.random.default_rng([seed, 2024])
    grids = [  # (row_mm, col_mm, fov_row_mm, fov_col_mm)
        (0.5, 0.5, 128, 128),
        (0.3125, 0.3125, 140, 140),
        (0.6, 0.6, 130, 130),
        (0.45, 0.35, 126, 126),
        (0.3125, 1.5, 140, 135),
        (0.55, 0.4, 132, 128),
    ]
    contrasts = list(CONTRASTS)
    extrusions = np.linspace(-1.0, 7.0, n) if n > 1 else np.array([2.0])
    extrusions = extrusions[rng.permutation(n)]
    specs = []
    for i in range(n):
        dr, dc, fr_, fc = grids[i % len(grids)]
        specs.append(
            PhantomSpec(
                name=f"suite_{i:03d}",
                laterality="RL"[i % 2],
                contrast=contrasts[(i // 2) % len(contrasts)],
                extrusion_mm=round(float(extrusions[i]), 2),
                lateral_extrusion_mm=round(float(rng.uniform(-1.5, 3.0)), 2),
                rows=int(round(fr_ / dr)),
                cols=int(round(fc / dc)),
                row_spacing_mm=dr,
                col_spacing_mm=dc,
                n_slices=int(rng.integers(12, 19)),
                slice_spacing_mm=float(rng.choice([3.0, 3.3, 3.5, 4.0])),
                noise=round(float(rng.uniform(0.01, 0.06)), 3),
                bias=round(float(rng.uniform(0.0, 0.3)), 3),
                rotation_deg=round(float(rng.uniform(-8, 8)), 2) if rng.random() < 0.6 else 0.0,
                plateau_tilt_deg=round(float(rng.uniform(-4, 4)), 2) if rng.random() < 0.5 else 0.0,
                osteophyte_mm=round(float(rng.uniform(1.5, 4.0)), 2) if rng.random() < 0.3 else 0.0,
                effusion=bool(rng.random() < 0.3),
                degenerated=bool(rng.random() < 0.3),
                include_laterality_tag=bool(rng.random() < 0.7),
                reverse_instances=bool(rng.random() < 0.5),
                flip_columns=bool(rng.random() < 0.2),
                knee_offset_mm=(
                    round(float(rng.uniform(-8, 8)), 1),
                    round(float(rng.uniform(-6, 6)), 1),
                ),
                ref_offset=int(rng.integers(-1, 2)),
                knee_scale=round(float(rng.uniform(0.92, 1.06)), 3),
                seed=seed * 1000 + i,
            )
        )
    return specs


__all__ = [
    "CONTRASTS",
    "PhantomSpec",
    "PhantomTruth",
    "SAMPLE_SPECS",
    "TRUTH_COLUMNS",
    "label_slice",
    "make_volume",
    "suite_specs",
    "truth_row",
    "write_samples",
    "write_series",
]
