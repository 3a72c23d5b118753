"""Ultrasound phantoms of the medial joint line with known meniscal extrusion.

The view is the longitudinal (coronal) view over the MCL: rows are depth (skin
at row 0), columns run along the probe (proximal-distal). From the top: skin,
subcutaneous fat with septa, the MCL as a fibrillar hyperechoic band, then the
femoral condyle (convex cortex) on the proximal side and the tibia (straight
cortex, sharp margin) on the distal side, both with acoustic shadow beneath,
and in the joint gap between them the meniscus as a hyperechoic triangle with
its (slightly convex) base toward the skin and its apex pointing into the joint.

Anatomy is built in a local frame attached to the tibial reference line:
``u`` (mm) along the line, positive toward the tibia, 0 at the tibial margin;
``v`` (mm) perpendicular to it, positive toward the skin. The most superficial
point of the meniscal body is the apex of the base arc at ``v = extrusion_mm``,
so the truth is exact by construction. The local frame is tilted by
``tilt_deg`` against the image rows.

Image formation: scatterer amplitudes (complex Gaussian x sqrt(echogenicity),
partial-volume anti-aliased by supersampling) convolved with an anisotropic
Gaussian point-spread function give correlated, Rayleigh-distributed speckle;
depth attenuation is partly undone by time-gain compensation; the envelope is
log-compressed to 8 bits. Shadowing: everything below the first bone surface
of a column (the beam runs down the columns) is nearly anechoic.

Units: ``_mm`` physical, ``_px`` pixels; points are ``(row, col)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

#: Echogenicity (linear backscatter power, arbitrary units) of each tissue.
_ECHO = {
    "skin": 2.0,
    "fat": 0.06,
    "septa": 0.8,
    "mcl": 1.6,
    "soft": 0.07,
    "joint": 0.04,
    "meniscus": 1.0,
    "cortex": 12.0,
    "shadow": 0.004,
}


@dataclass
class UsPhantomSpec:
    """Parameters of one ultrasound phantom.

    Attributes
    ----------
    extrusion_mm : float
        Truth MME (mm): perpendicular distance of the most superficial point of
        the meniscal body from the tibial reference line, positive toward the skin.
    depth_mm : float
        Imaged depth (mm); ``rows = round(depth_mm / spacing_mm[0])``.
    width_mm : float
        Field of view along the probe (mm); ``cols = round(width_mm / spacing_mm[1])``.
    spacing_mm : (float, float)
        (row spacing, column spacing) in mm (square or not).
    speckle : float
        0 = no speckle (smooth echogenicity), 1 = fully developed speckle.
    tgc : float
        Fraction (0..1) of the depth attenuation compensated by time-gain compensation.
    proximal : str
        ``"image-left"`` or ``"image-right"``: the side of the femur.
    rgb : bool
        Store the image as RGB (grey on three channels, coloured UI text).
    n_frames : int
        Frames in the file; the others are blurred copies, the truth frame is the sharpest.
    seed : int
        Random seed (speckle, tissue texture).
    tibial_depth_mm : float
        Depth of the tibial margin below the skin (mm).
    tilt_deg : float
        Tilt of the tibial cortex line against the image rows (degrees).
    gap_mm : float
        Joint gap between femoral and tibial margins along the line (mm).
    femur_offset_mm : float
        Height of the femoral margin above the tibial line (mm, + toward the skin).
    condyle_radius_mm : float
        Radius of the convex femoral condyle surface (mm).
    mcl_depth_mm, mcl_thickness_mm : float
        Top depth and thickness of the MCL band (mm).
    anisotropy : float
        0..1: how much the MCL darkens where it is tilted against the beam.
    atten_db_per_mm : float
        Round-trip attenuation (dB/mm) before TGC.
    psf_sigma_mm : (float, float)
        Axial and lateral sigma of the point-spread function (mm).
    chrome : bool
        Add a UI border with burned-in text blocks around the image region (DICOM only).
    truth_frame : int or None
        Index of the sharpest (truth) frame; default the middle frame.
    meniscus_shift_mm : float
        Shift of the meniscal peak from the gap centre along the line (mm, + toward the tibia).
    meniscus_apex_mm : float
        Depth of the meniscal apex below the tibial line (mm).
    extra : dict
        Rarely used knobs (``margin_shift_mm``: move the joint along the probe).
    """

    extrusion_mm: float = 3.0
    depth_mm: float = 30.0
    width_mm: float = 40.0
    spacing_mm: tuple[float, float] = (0.1, 0.1)
    speckle: float = 0.8
    tgc: float = 0.8
    proximal: str = "image-left"
    rgb: bool = False
    n_frames: int = 1
    seed: int = 0
    tibial_depth_mm: float = 16.0
    tilt_deg: float = 0.0
    gap_mm: float = 5.0
    femur_offset_mm: float = 0.5
    condyle_radius_mm: float = 18.0
    mcl_depth_mm: float = 4.0
    mcl_thickness_mm: float = 2.0
    anisotropy: float = 0.5
    atten_db_per_mm: float = 0.8
    psf_sigma_mm: tuple[float, float] = (0.12, 0.25)
    chrome: bool = True
    truth_frame: int | None = None
    meniscus_shift_mm: float = 0.0
    meniscus_apex_mm: float = 4.0
    extra: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(round(self.depth_mm / self.spacing_mm[0]))

    @property
    def cols(self) -> int:
        return int(round(self.width_mm / self.spacing_mm[1]))


@dataclass
class UsTruth:
    """Exact landmarks of a phantom, ``(row, col)`` pixels of the image region.

    ``reference_dir_rc`` is the unit direction of the tibial line in physical
    ``(row_mm, col_mm)``, pointing from the margin toward the tibia.
    """

    tibial_margin_rc: tuple[float, float]
    femoral_margin_rc: tuple[float, float]
    meniscus_rc: tuple[float, float]
    reference_dir_rc: tuple[float, float]
    extrusion_mm: float
    femorotibial_extrusion_mm: float
    tibia_side: str


def _frame(spec: UsPhantomSpec):
    """Tibial margin position (z, x mm) and unit vectors of the local frame."""
    s_t = 1.0 if spec.proximal == "image-left" else -1.0  # tibia toward +x when femur left
    a = math.radians(spec.tilt_deg)
    e_u = np.array([math.sin(a), s_t * math.cos(a)])  # (z, x), toward the tibia
    e_v = np.array([-math.cos(a), s_t * math.sin(a)])  # toward the skin
    x_m = spec.width_mm / 2 + s_t * spec.gap_mm / 2 + spec.extra.get("margin_shift_mm", 0.0)
    m = np.array([spec.tibial_depth_mm, x_m])
    return m, e_u, e_v, s_t


def _labels(spec: UsPhantomSpec, z: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean tissue masks at physical points (z, x) in mm (any equal shapes)."""
    m, e_u, e_v, _ = _frame(spec)
    dz, dx = z - m[0], x - m[1]
    u = dz * e_u[0] + dx * e_u[1]
    v = dz * e_v[0] + dx * e_v[1]
    g = spec.gap_mm
    # tibia: u > 0, v < 0, with a small rounded corner (radius 0.5 mm)
    rt = 0.5
    tibia = (u > 0) & (v < 0)
    corner = (u < rt) & (v > -rt)
    tibia &= ~corner | ((u - rt) ** 2 + (v + rt) ** 2 <= rt**2)
    # femur: convex condyle, peak 6 mm from the gap, rounded into the gap
    radius = spec.condyle_radius_mm
    u_p = -g - 6.0
    h_f = spec.femur_offset_mm
    h_peak = h_f + (u_p + g) ** 2 / (2 * radius)
    v_f = h_peak - (u - u_p) ** 2 / (2 * radius)
    femur = (u < -g) & (v < v_f)
    rf = 1.5  # corner rounding radius (mm)
    slope = (-g - u_p) / radius  # |dv/du| at the margin
    near = (u > -g - rf) & (v > h_f - rf - slope * rf)
    cu, cv = -g - rf, h_f - rf
    femur &= ~near | ((u - cu) ** 2 + (v - cv) ** 2 <= rf**2) | (u < cu)
    # meniscus: triangle with a convex base arc peaking at v = extrusion
    u_c = -g / 2 + spec.meniscus_shift_mm
    b = g / 2 + 1.5
    sag = 0.8
    v_top = spec.extrusion_mm - sag * ((u - u_c) / b) ** 2
    apex = -(spec.meniscus_apex_mm)
    v_base_end = spec.extrusion_mm - sag
    # lower sides: from (u_c +- b, v_base_end) to (u_c, apex)
    side = v_base_end + (v_base_end - apex) * (np.abs(u - u_c) - b) / b
    meniscus = (v <= v_top) & (v >= side) & (np.abs(u - u_c) <= b)
    bone = tibia | femur
    meniscus &= ~bone
    return {"tibia": tibia, "femur": femur, "bone": bone, "meniscus": meniscus, "u": u, "v": v}


def _echogenicity(spec: UsPhantomSpec, rng: np.random.Generator) -> np.ndarray:
    """Echogenicity map (rows, cols), anti-aliased by 3x3 supersampling."""
    rs, cs = spec.spacing_mm
    rows, cols = spec.rows, spec.cols
    ss = 3
    zz = (np.arange(rows * ss) + 0.5) / ss - 0.5
    xx = (np.arange(cols * ss) + 0.5) / ss - 0.5
    z = zz[:, None] * rs
    x = xx[None, :] * cs
    z2 = np.broadcast_to(z, (rows * ss, cols * ss))
    x2 = np.broadcast_to(x, (rows * ss, cols * ss))
    lab = _labels(spec, z2, x2)
    bone = lab["bone"]
    # first bone sample of each column -> cortex band and shadow below
    below = np.cumsum(bone, axis=0) > 0
    first = np.argmax(bone, axis=0).astype(float)
    first[~bone.any(axis=0)] = np.inf
    depth_below_surface = z2 - ((first[None, :] + 0.5) / ss - 0.5) * rs
    cortex = below & (depth_below_surface <= 0.6)
    shadow = below & ~cortex
    # specular cortex: bright where the surface faces the probe, dim on steep walls
    surf = np.where(np.isfinite(first), ((first + 0.5) / ss - 0.5) * rs, np.nan)
    slope = np.abs(np.gradient(np.nan_to_num(surf, nan=1e3), x[0]))
    specular = np.cos(np.arctan(slope)) ** 4

    echo = np.full(z2.shape, _ECHO["soft"])
    # skin and fat
    echo[z2 < 0.6] = _ECHO["skin"]
    fat = (z2 >= 0.6) & (z2 < spec.mcl_depth_mm)
    echo[fat] = _ECHO["fat"]
    # septa: a few thin oblique bright lines in the fat
    for _ in range(3):
        z0 = rng.uniform(1.2, max(1.3, spec.mcl_depth_mm - 0.8))
        slope = rng.uniform(-0.08, 0.08)
        line = np.abs(z2 - (z0 + slope * (x2 - spec.width_mm / 2))) < 0.12
        echo[fat & line] = _ECHO["septa"]
    # MCL: band whose deep edge bows over an extruded meniscus (>= 1.2 mm gap)
    men = lab["meniscus"]
    mcl_top = np.full(x.shape[1], float(spec.mcl_depth_mm))
    men_cols = men.any(axis=0)
    if men_cols.any():
        top_z = np.where(men_cols, np.argmax(men, axis=0) / ss * rs, np.inf)
        need = top_z - 1.2 - spec.mcl_thickness_mm  # required MCL top depth
        xs = x[0]
        idx = np.flatnonzero(men_cols)
        env = np.min(need[idx][None, :] + (xs[:, None] - xs[idx][None, :]) ** 2 / 20.0, axis=1)
        mcl_top = np.minimum(mcl_top, env)
    mcl_top = np.maximum(mcl_top, 0.8)
    mcl = (z2 >= mcl_top[None, :]) & (z2 < mcl_top[None, :] + spec.mcl_thickness_mm)
    slope = np.gradient(mcl_top, x[0])
    aniso = np.cos(np.arctan(slope)) ** (8 * spec.anisotropy)
    fib = rng.standard_normal((rows * ss, cols * ss))
    fib = ndimage.gaussian_filter(fib, (0.08 / rs * ss, 2.0 / cs * ss))
    fib = 1.0 + 0.5 * fib / (fib.std() + 1e-9)
    mcl_echo = _ECHO["mcl"] * np.clip(fib, 0.3, 2.0) * aniso[None, :]
    echo[mcl] = mcl_echo[mcl]
    # joint gap below the meniscus and the meniscus itself
    in_gap = ~below & (lab["v"] < 0) & ~bone & (z2 > spec.mcl_depth_mm + spec.mcl_thickness_mm)
    echo[in_gap] = _ECHO["joint"]
    echo[men] = _ECHO["meniscus"]
    cortex_echo = np.broadcast_to(_ECHO["cortex"] * np.maximum(specular, 0.02)[None, :], echo.shape)
    echo[cortex] = cortex_echo[cortex]
    echo[shadow] = _ECHO["shadow"]
    # back to the pixel grid (partial volume)
    return echo.reshape(rows, ss, cols, ss).mean(axis=(1, 3))


def _truth(spec: UsPhantomSpec) -> UsTruth:
    m, e_u, e_v, s_t = _frame(spec)
    rs, cs = spec.spacing_mm
    g = spec.gap_mm
    u_c = -g / 2 + spec.meniscus_shift_mm

    def rc(u: float, v: float) -> tuple[float, float]:
        p = m + u * e_u + v * e_v
        return (float(p[0] / rs), float(p[1] / cs))

    femoral = rc(-g, spec.femur_offset_mm)
    meniscus = rc(u_c, spec.extrusion_mm)
    # femorotibial: distance of the meniscus point from the line through both margins
    d = np.array([-g, spec.femur_offset_mm])
    d = d / np.hypot(*d)
    n = np.array([-d[1], d[0]])
    if n[1] < 0:
        n = -n
    ft = float(np.array([u_c, spec.extrusion_mm]) @ n)
    return UsTruth(
        tibial_margin_rc=(float(m[0] / rs), float(m[1] / cs)),
        femoral_margin_rc=femoral,
        meniscus_rc=meniscus,
        reference_dir_rc=(float(e_u[0]), float(e_u[1])),
        extrusion_mm=float(spec.extrusion_mm),
        femorotibial_extrusion_mm=ft,
        tibia_side="image-right" if s_t > 0 else "image-left",
    )


def _bmode(spec: UsPhantomSpec, echo: np.ndarray, rng: np.random.Generator, blur_px: float):
    rs, cs = spec.spacing_mm
    psf = (spec.psf_sigma_mm[0] / rs, spec.psf_sigma_mm[1] / cs)
    amp = np.sqrt(echo)
    white = (rng.standard_normal(echo.shape) + 1j * rng.standard_normal(echo.shape)) / math.sqrt(2)
    rf = ndimage.gaussian_filter(amp * white.real, psf) + 1j * ndimage.gaussian_filter(
        amp * white.imag, psf
    )
    norm = math.sqrt(2 * math.pi * psf[0] * psf[1] * 2) if min(psf) > 0 else 1.0
    speck = np.abs(rf) * norm
    smooth = np.sqrt(ndimage.gaussian_filter(echo, psf)) * math.sqrt(math.pi) / 2
    env = (1 - spec.speckle) * smooth + spec.speckle * speck
    if blur_px > 0:
        env = ndimage.gaussian_filter(env, blur_px)
    z = (np.arange(echo.shape[0]) * rs)[:, None]
    env = env * 10 ** (-spec.atten_db_per_mm * z * (1 - spec.tgc) / 20)
    env = env + 0.003 * np.abs(rng.standard_normal(env.shape))
    ref = np.percentile(env, 99.7)
    dyn = 50.0
    db = 20 * np.log10(np.maximum(env, 1e-9) / ref)
    return np.clip((db + dyn) / dyn * 255.0, 0, 255).astype(np.float32)


def make_us_image(spec: UsPhantomSpec) -> tuple[np.ndarray, UsTruth]:
    """Render the truth frame of a phantom.

    Parameters
    ----------
    spec : UsPhantomSpec

    Returns
    -------
    image : ndarray, shape (rows, cols), float32
        Log-compressed B-mode image, 0..255 (no UI chrome).
    truth : UsTruth
        Exact landmarks in pixels of this image and the exact extrusion (mm).
    """
    rng = np.random.default_rng(spec.seed)
    echo = _echogenicity(spec, rng)
    image = _bmode(spec, echo, rng, 0.0)
    return image, _truth(spec)


def _frames(spec: UsPhantomSpec) -> tuple[list[np.ndarray], int, UsTruth]:
    """All frames; the truth frame is identical to :func:`make_us_image`, the others blurred."""
    rng = np.random.default_rng(spec.seed)
    echo = _echogenicity(spec, rng)
    truth_frame = spec.truth_frame if spec.truth_frame is not None else spec.n_frames // 2
    frames = []
    for k in range(spec.n_frames):
        if k == truth_frame:
            frames.append(_bmode(spec, echo, rng, 0.0))
        else:
            other = np.random.default_rng((spec.seed, k))
            frames.append(_bmode(spec, echo, other, 1.0 + 0.5 * abs(k - truth_frame)))
    return frames, truth_frame, _truth(spec)


_GLYPH_ROWS = 7


def _chrome(image: np.ndarray, rng: np.random.Generator):
    """Place the image in a larger frame with burned-in text blocks; return frame and offset."""
    top, left, bottom, right = 40, 24, 30, 60
    rows, cols = image.shape
    canvas = np.zeros((rows + top + bottom, cols + left + right), dtype=np.float32)
    canvas[top : top + rows, left : left + cols] = image
    # pseudo text: rows of small bright blocks (never patient data)
    for line in range(3):
        r0 = 6 + line * 10
        c = 8
        while c < canvas.shape[1] - 20 and c < 8 + 30 * 6:
            if rng.random() < 0.8:
                glyph = rng.random((_GLYPH_ROWS, 4)) > 0.45
                canvas[r0 : r0 + _GLYPH_ROWS, c : c + 4][glyph] = 230.0
            c += 6
    # depth ruler on the right
    for k in range(0, rows, max(1, rows // 10)):
        canvas[top + k, left + cols + 8 : left + cols + 16] = 200.0
    return canvas, (top, left)


def _ds_template(spec: UsPhantomSpec, rows: int, cols: int, region: tuple[int, int, int, int]):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    multi = spec.n_frames > 1
    sop_class = (
        "1.2.840.10008.5.1.4.1.1.3.1" if multi else "1.2.840.10008.5.1.4.1.1.6.1"
    )  # Ultrasound Multi-frame Image Storage / Ultrasound Image Storage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientName = "PHANTOM^US"
    ds.PatientID = f"PHANTOM-US-{spec.seed}"
    ds.SeriesDescription = "kneemeasure US phantom, medial joint line, longitudinal"
    ds.Manufacturer = "kneemeasure phantom"
    ds.InstanceNumber = 1
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if spec.rgb:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    if multi:
        ds.NumberOfFrames = spec.n_frames
        ds.FrameIncrementPointer = pydicom.tag.Tag(0x0018, 0x1063)
        ds.FrameTime = 33.3
    y0, x0, y1, x1 = region
    item = pydicom.Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0 = x0
    item.RegionLocationMinY0 = y0
    item.RegionLocationMaxX1 = x1
    item.RegionLocationMaxY1 = y1
    item.ReferencePixelX0 = (x1 - x0) // 2
    item.ReferencePixelY0 = 0
    item.PhysicalUnitsXDirection = 3
    item.PhysicalUnitsYDirection = 3
    item.ReferencePixelPhysicalValueX = 0.0
    item.ReferencePixelPhysicalValueY = 0.0
    item.PhysicalDeltaX = spec.spacing_mm[1] / 10.0
    item.PhysicalDeltaY = spec.spacing_mm[0] / 10.0
    ds.SequenceOfUltrasoundRegions = [item]
    return ds


def write_us_dicom(spec: UsPhantomSpec, path: Path | str) -> dict:
    """Write a phantom as a real ultrasound DICOM file.

    Ultrasound Image Storage (single frame) or Ultrasound Multi-frame Image
    Storage (``n_frames > 1``; the other frames are blurred, the truth frame is
    the sharpest), 8-bit MONOCHROME2 or RGB, explicit VR little endian, with a
    Sequence of Ultrasound Regions (0018,6011) whose single 2D tissue region
    holds the B-mode image (Physical Delta X/Y in cm, units code 3). With
    ``spec.chrome`` the region sits inside a larger frame with burned-in
    pseudo-text and a depth ruler outside the region.

    Parameters
    ----------
    spec : UsPhantomSpec
    path : Path or str
        Output file.

    Returns
    -------
    dict
        The truth row: file name, extrusion (tibial and femorotibial
        references), landmarks in full-image pixels, truth frame, spacing and
        the spec parameters.
    """
    path = Path(path)
    frames, truth_frame, truth = _frames(spec)
    offset = (0, 0)
    if spec.chrome:
        out = []
        for f in frames:
            canvas, offset = _chrome(f, np.random.default_rng(spec.seed + 7919))
            out.append(canvas)
        frames = out
    rows, cols = frames[0].shape
    r_rows, r_cols = spec.rows, spec.cols
    region = (offset[0], offset[1], offset[0] + r_rows - 1, offset[1] + r_cols - 1)
    ds = _ds_template(spec, rows, cols, region)
    stack = np.stack([np.clip(np.round(f), 0, 255).astype(np.uint8) for f in frames])
    if spec.rgb:
        rgb = np.repeat(stack[..., None], 3, axis=-1)
        if spec.chrome:  # colour the UI text yellow, like a scanner overlay
            ui = np.zeros(stack.shape, dtype=bool)
            ui[:, : offset[0], :] = True
            rgb[ui, 2] = (rgb[ui, 2] * 0.2).astype(np.uint8)
        stack = rgb
    if spec.n_frames == 1:
        stack = stack[0]
    ds.PixelData = stack.tobytes()
    ds.save_as(path, enforce_file_format=True)

    def full(p: tuple[float, float]) -> tuple[float, float]:
        return (p[0] + offset[0], p[1] + offset[1])

    tm = full(truth.tibial_margin_rc)
    fm = full(truth.femoral_margin_rc)
    mm = full(truth.meniscus_rc)
    row = {
        "file": path.name,
        "extrusion_mm": truth.extrusion_mm,
        "femorotibial_extrusion_mm": truth.femorotibial_extrusion_mm,
        "truth_frame": truth_frame,
        "tibia_side": truth.tibia_side,
        "proximal": spec.proximal,
        "tibial_margin_row_px": tm[0],
        "tibial_margin_col_px": tm[1],
        "femoral_margin_row_px": fm[0],
        "femoral_margin_col_px": fm[1],
        "meniscus_row_px": mm[0],
        "meniscus_col_px": mm[1],
        "row_spacing_mm": spec.spacing_mm[0],
        "col_spacing_mm": spec.spacing_mm[1],
        "region_x0": region[1],
        "region_y0": region[0],
    }
    for key, value in asdict(spec).items():
        if key in ("spacing_mm", "extra", "extrusion_mm", "proximal", "psf_sigma_mm"):
            continue
        row[f"spec_{key}"] = value
    return row


def us_suite_specs(n: int = 100, *, seed: int = 0) -> list[UsPhantomSpec]:
    """A varied suite of phantom specs with extrusion spread over 0..7 mm.

    Speckle levels, depths, spacings (some non-square), tilts, gap widths,
    femoral offsets, condyle radii, both orientations; every 4th is RGB and
    every 5th multi-frame (3 frames).

    Parameters
    ----------
    n : int
        Number of specs.
    seed : int
        Seed of the parameter draw (each spec gets its own image seed).

    Returns
    -------
    list of UsPhantomSpec
    """
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        extrusion = float(7.0 * (i + rng.uniform(0, 1)) / n)
        depth = float(rng.choice([25.0, 30.0, 35.0, 40.0]))
        base = float(rng.uniform(0.07, 0.13))
        spacing = (base, base) if i % 3 else (base, float(base * rng.uniform(1.1, 1.5)))
        tib_lo = max(11.0, extrusion + 8.0)
        tib = float(rng.uniform(tib_lo, max(min(depth - 8.0, 20.0), tib_lo + 1.0)))
        spec = UsPhantomSpec(
            extrusion_mm=round(extrusion, 3),
            depth_mm=depth,
            width_mm=float(rng.uniform(35.0, 45.0)),
            spacing_mm=(round(spacing[0], 4), round(spacing[1], 4)),
            speckle=float(rng.choice([0.4, 0.7, 0.9, 1.0])),
            tgc=float(rng.uniform(0.6, 1.0)),
            proximal="image-left" if rng.random() < 0.5 else "image-right",
            rgb=(i % 4 == 1),
            n_frames=3 if i % 5 == 2 else 1,
            seed=int(seed * 100003 + i),
            tibial_depth_mm=round(tib, 2),
            tilt_deg=float(rng.uniform(-8.0, 8.0)),
            gap_mm=float(rng.uniform(3.5, 7.0)),
            femur_offset_mm=float(rng.uniform(-1.0, 1.5)),
            condyle_radius_mm=float(rng.uniform(12.0, 25.0)),
            mcl_depth_mm=float(rng.uniform(2.5, 4.5)),
            mcl_thickness_mm=float(rng.uniform(1.5, 2.5)),
            anisotropy=float(rng.uniform(0.0, 1.0)),
            meniscus_shift_mm=float(rng.uniform(-0.5, 0.5)),
            meniscus_apex_mm=float(rng.uniform(3.5, 5.5)),
        )
        specs.append(spec)
    return specs


def with_(spec: UsPhantomSpec, **changes) -> UsPhantomSpec:
    """A copy of ``spec`` with some fields changed (``dataclasses.replace``)."""
    return replace(spec, **changes)


#: The ultrasound phantoms bundled in ``sample_dicoms/`` (fixed seeds, so deterministic).
US_SAMPLE_SPECS = {
    "us_phantom_gray.dcm": UsPhantomSpec(
        extrusion_mm=2.0,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.15),
        speckle=0.9,
        proximal="image-left",
        seed=101,
        tibial_depth_mm=14.0,
        tilt_deg=3.0,
    ),
    "us_phantom_rgb.dcm": UsPhantomSpec(
        extrusion_mm=4.2,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.15),
        speckle=0.7,
        proximal="image-right",
        rgb=True,
        seed=102,
        tibial_depth_mm=15.0,
        tilt_deg=-4.0,
    ),
    "us_phantom_cine.dcm": UsPhantomSpec(
        extrusion_mm=3.4,
        depth_mm=25.0,
        width_mm=36.0,
        spacing_mm=(0.15, 0.18),
        speckle=1.0,
        proximal="image-left",
        n_frames=3,
        truth_frame=1,
        seed=103,
        tibial_depth_mm=15.0,
    ),
}


def write_us_samples(outdir: Path | str) -> Path:
    """Write the bundled ultrasound phantoms and ``us_truth.csv`` into ``outdir``.

    Returns the path of ``us_truth.csv`` (one row per file, as
    :func:`write_us_dicom` returns it, floats to 4 decimals).
    """
    import csv

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [write_us_dicom(spec, outdir / name) for name, spec in US_SAMPLE_SPECS.items()]
    path = outdir / "us_truth.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()}
            )
    return path
