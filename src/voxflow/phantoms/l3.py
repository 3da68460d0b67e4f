"""Seeded torso-CT phantom for L3 slice localisation (study ``l3``), in the real layout.

Per patient (seeded with :func:`voxflow.seeding.rng`), an analytic torso is drawn slice by slice
on an axial grid (``ct[i, j, k]``: i = column towards patient left, j = row towards posterior,
k = slice, increasing k = superior; RAS affine). Each slice integrates its slab (several
sub-planes: partial volume along z), edges are anti-aliased in-plane (partial volume), and
Gaussian noise is added last. HU values and geometry follow ../shared/specs/phantom-physics.md §D:

- **Body**: flattened-back ellipse (lateral semi-axis 140-190 mm, AP 100-140 mm, slowly varying
  along z, wider at the hips), subcutaneous fat (10-40 mm), abdominal wall muscle, visceral content
  (soft tissue 30-40 HU with fat islands and bowel gas), a curved patient table, air outside.
- **Spine** T8-L5 (+ sacrum): per-level body heights and disc heights from the §D2 table (±10 %),
  elliptical bodies 32→50 mm wide and 25→34 mm deep, cancellous bone (150-250 HU) in a 1.6 mm
  cortical rim (700-1000 HU before partial volume; endplates 0.8 of that), discs 70-90 HU, a
  neural arch around the CSF canal, spinous and transverse processes (450 HU, mixed bone;
  transverse processes longest at L3, §D3 [U]), lumbar lordosis, the sacrum tilting posteriorly
  with its alae meeting the iliac wings (sacroiliac joints).
- **Ribs** on the thoracic vertebrae down to T12: each rib runs from its costovertebral joint past
  the transverse process into the body wall and around it, descending; no rib reaches below the
  inferior endplate of the last rib-bearing vertebra. Posterior lung bases above T12.
- **Organs**: liver (right upper, 50-62 HU), spleen (left upper, 40-50), kidneys (25-35 HU,
  ellipsoids ~110 x 55 x 45 mm in perirenal fat, right T12-L3, left T11-L2 ± 1/3 vertebra),
  aorta (bifurcating at L4) and IVC, psoas (from L1, growing caudally), quadratus lumborum,
  erector spinae, iliac wings from the iliac crest (L4/L5) downward, with iliacus and gluteals.
- **Variability**: patient size and position in the field of view, fat thickness, slice
  thickness (uniform in [``slice_min_mm``, ``slice_max_mm``], spacing = thickness), vertebral
  heights, organ extents, z start (T10 upper endplate ±) and end (upper sacrum, a few cm jitter).

**Transitional anatomy** (a ``transitional_fraction`` of patients): ``six_lumbar`` (six rib-free
mobile vertebrae above the sacrum) or ``rib13`` (a 13th, short rib pair on L1).

**Counting rule**: every vertebra is *named by counting up from the sacrum*: the lowest mobile
(non-sacral) vertebra is L5, L3 is two bodies above it, then L2, L1, T12, T11, ... upward. So a
13th rib pair does not move the labels (it sits on L1), and in a six-lumbar spine the labelled
L3 is the third mobile vertebra above the sacrum while the extra rib-free vertebra is the one
counted as T12 (a "rib-less T12"; the last ribs are then on T11). ``params["ribs_on"]`` lists
the rib-bearing vertebrae and ``params["rib_free"]`` the rib-free mobile ones (six in
``six_lumbar``). Kidneys, psoas and iliac crests are placed relative to the counted levels.

**Label truth**: slice k is an L3 slice when its centre z lies inside the L3 vertebral body
(between its endplates); ``l3_first``/``l3_last`` are the first/last such k in the volume's own
feet→head order. ``l3_labels.csv`` states them in the patient's ``index_order`` (drawn per
patient): for ``head_to_feet`` an index is ``n_slices - 1 - k`` (first <= last).

Layout (``root``): ``<patient>/IM0001.dcm...`` the axial CT series ("ABDOMEN/PELVIS"), for some
patients (``scout_fraction``) also a coronal localizer ``<patient>/SC0001.dcm`` (mean HU over the
AP axis, its own series UID and number, description "SCOUT"), and ``l3_labels.csv``
(``patient,l3_first,l3_last,index_order``). The ground truth goes to ``<truth>/<patient>/
params.json`` (levels, variant, geometry, HU values).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.atomic import write_json, write_text_atomic
from voxflow.seeding import rng

VARIANTS = ("normal", "six_lumbar", "rib13")
INDEX_ORDERS = ("feet_to_head", "head_to_feet")
# Vertebrae counted up from the sacrum (see the counting rule in the module docstring).
NAMES = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8")
HEIGHT_MM = {
    "T8": 19.0, "T9": 20.0, "T10": 21.0, "T11": 22.0, "T12": 23.0,
    "L1": 25.0, "L2": 26.0, "L3": 27.0, "L4": 27.0, "L5": 26.0,
}  # fmt: skip
DISC_BELOW_MM = {
    "T8": 5.5, "T9": 6.0, "T10": 6.5, "T11": 7.0, "T12": 8.0,
    "L1": 10.0, "L2": 11.6, "L3": 12.5, "L4": 13.8, "L5": 13.0,
}  # fmt: skip
WIDTH_MM = {
    "T8": 32.0, "T9": 34.0, "T10": 36.0, "T11": 38.0, "T12": 40.0,
    "L1": 42.0, "L2": 44.0, "L3": 46.0, "L4": 48.0, "L5": 50.0,
}  # fmt: skip
DEPTH_MM = {
    "T8": 25.0, "T9": 26.0, "T10": 27.0, "T11": 28.0, "T12": 30.0,
    "L1": 31.0, "L2": 32.0, "L3": 33.0, "L4": 34.0, "L5": 34.0,
}  # fmt: skip
# Transverse processes: half span from the midline (mm); L3 longest (§D3 [U]).
TP_MM = {
    "T8": 42.0, "T9": 41.0, "T10": 40.0, "T11": 36.0, "T12": 30.0,
    "L1": 37.0, "L2": 44.0, "L3": 52.0, "L4": 46.0, "L5": 43.0,
}  # fmt: skip
# Rib length and drop (mm) by rank from the lowest rib-bearing vertebra (floating ribs first).
RIB_LENGTH_MM = (120.0, 175.0, 230.0, 250.0, 260.0)
RIB_DROP_MM = (16.0, 32.0, 48.0, 60.0, 70.0)
RIB13 = (70.0, 6.0)  # the hypoplastic 13th rib: length, drop
TISSUE = {
    "air": 0, "fat": 1, "muscle": 2, "viscera": 3, "gas": 4, "liver": 5, "spleen": 6,
    "kidney": 7, "vessel": 8, "psoas": 9, "cancellous": 10, "cortical": 11, "disc": 12,
    "csf": 13, "rib": 14, "ilium": 15, "sacrum": 16, "lung": 17, "table": 18,
}  # fmt: skip
AIR_HU = -1000.0


@dataclass(frozen=True)
class L3PhantomConfig:
    """Image grid, noise and cohort mix of the torso-CT phantom."""

    matrix: int = 128
    pixel_mm: float = 3.5
    slice_min_mm: float = 2.5
    slice_max_mm: float = 5.0
    noise_hu: float = 12.0
    transitional_fraction: float = 0.15
    scout_fraction: float = 0.5
    head_to_feet_fraction: float = 0.5
    table: bool = True

    def __post_init__(self) -> None:
        if self.matrix < 32 or self.pixel_mm <= 0:
            raise VoxflowError("l3 phantom: need matrix >= 32 and pixel_mm > 0")
        if self.matrix * self.pixel_mm < 380.0:
            raise VoxflowError(
                f"l3 phantom: field of view matrix*pixel_mm = {self.matrix * self.pixel_mm:g} mm"
                " is too small for a torso (>= 380 mm)"
            )
        if not 0.5 <= self.slice_min_mm <= self.slice_max_mm <= 10.0:
            raise VoxflowError("l3 phantom: need 0.5 <= slice_min_mm <= slice_max_mm <= 10")
        for name in ("transitional_fraction", "scout_fraction", "head_to_feet_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise VoxflowError(f"l3 phantom: {name} must be within 0-1")
        if self.noise_hu < 0:
            raise VoxflowError("l3 phantom: noise_hu must be >= 0")

    @classmethod
    def from_dict(cls, d: dict) -> L3PhantomConfig:
        """From the ``l3.phantom`` config block (minus ``patients``); unknown keys rejected."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(types) - {"patients"})
        if unknown:
            raise VoxflowError(f"l3.phantom: unknown key(s) {unknown}; allowed {sorted(types)}")
        cast = {"int": int, "float": float, "bool": bool}
        return cls(**{k: cast[str(types[k])](v) for k, v in d.items() if k in types})


# ----------------------------------------------------------------------------------- drawing


class _Canvas:
    """One axial plane in HU (``img[i, j]``) with anti-aliased painting (and tissue labels)."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, pixel: float, labels: bool) -> None:
        self.xs, self.ys, self.p, self.n = xs, ys, pixel, len(xs)
        self.img = np.full((self.n, self.n), AIR_HU, np.float32)
        self.lab = np.zeros((self.n, self.n), np.uint8) if labels else None

    def box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice] | None:
        """Index box covering [cx-rx, cx+rx] x [cy-ry, cy+ry] (x falls with i, y with j)."""
        p, n = self.p, self.n
        i0 = max(int((self.xs[0] - cx - rx) / p) - 1, 0)
        i1 = min(int((self.xs[0] - cx + rx) / p) + 2, n)
        j0 = max(int((self.ys[0] - cy - ry) / p) - 1, 0)
        j1 = min(int((self.ys[0] - cy + ry) / p) + 2, n)
        if i0 >= i1 or j0 >= j1:
            return None
        return slice(i0, i1), slice(j0, j1)

    def ellipse(
        self,
        cx: float,
        cy: float,
        ax: float,
        ay: float,
        ay_post: float | None = None,
        angle: float = 0.0,
        ymin: float | None = None,
    ) -> tuple[tuple[slice, slice] | None, np.ndarray | None]:
        """Soft (anti-aliased) ellipse: the index box and alpha in it. ``ay_post`` is the
        semi-axis towards posterior (-y) when it differs, ``angle`` rotates the x semi-axis
        (radians, towards +y), ``ymin`` cuts the ellipse at y > ymin (a flat back)."""
        if ax <= 0.1 or ay <= 0.1 or (ay_post is not None and ay_post <= 0.1):
            return None, None
        r_y = max(ay, ay_post or 0.0)
        r = max(ax, r_y) if angle else None
        box = self.box(cx, cy, r or ax, r or r_y)
        if box is None:
            return None, None
        dx = (self.xs[box[0]] - cx)[:, None]
        dy = (self.ys[box[1]] - cy)[None, :]
        if angle:
            c, s = math.cos(angle), math.sin(angle)
            dx, dy = dx * c + dy * s, dy * c - dx * s
        by = ay if ay_post is None else np.where(dy < 0, ay_post, ay)
        u, v = dx / ax, dy / by
        rr = np.sqrt(u * u + v * v)
        grad = np.sqrt((u / ax) ** 2 + (v / by) ** 2) / np.maximum(rr, 1e-6)
        alpha = np.clip(0.5 - (rr - 1.0) / (np.maximum(grad, 1e-9) * self.p), 0.0, 1.0)
        if ymin is not None:
            cut = np.clip(0.5 + (self.ys[box[1]] - ymin) / self.p, 0.0, 1.0)[None, :]
            alpha = np.minimum(alpha, cut)
        return box, alpha

    def paint(self, box, alpha, value, label: str | None) -> None:
        """Blend ``value`` (scalar or array over the box) in with ``alpha``; labels where
        alpha > 0.5 (``label`` None: the caller sets them)."""
        if box is None:
            return
        sub = self.img[box]
        sub += alpha * (value - sub)
        if self.lab is not None and label is not None:
            self.lab[box][alpha > 0.5] = TISSUE[label]

    def fill(self, value: float, label: str, *args, **kwargs) -> None:
        """Paint a soft ellipse (arguments of :meth:`ellipse`) with one value."""
        box, alpha = self.ellipse(*args, **kwargs)
        self.paint(box, alpha, value, label)

    def bone(self, cortical, cancellous, label, cx, cy, ax, ay, rim=1.6, **kw) -> None:
        """A bone cross-section: cortical shell ``rim`` mm thick around cancellous bone."""
        self.fill(cortical, "cortical" if label == "cancellous" else label, cx, cy, ax, ay, **kw)
        self.fill(cancellous, label, cx, cy, ax - rim, ay - rim, **kw)

    def splat(self, xs, ys, radius, weights, value: float, label: str) -> None:
        """Soft discs of ``radius`` (mm, scalar or per point) at points, max-combined."""
        if len(xs) == 0:
            return
        p = self.p
        fi, fj = (self.xs[0] - xs) / p, (self.ys[0] - ys) / p
        k = int(math.ceil(float(np.max(radius)) / p + 1.0))
        offs = np.arange(-k, k + 1)
        ii = np.rint(fi)[:, None, None] + offs[None, :, None]
        jj = np.rint(fj)[:, None, None] + offs[None, None, :]
        rad = np.broadcast_to(np.asarray(radius, float), fi.shape)[:, None, None]
        d = np.hypot((ii - fi[:, None, None]) * p, (jj - fj[:, None, None]) * p) - rad
        a = np.clip(0.5 - d / p, 0.0, 1.0) * np.asarray(weights, float)[:, None, None]
        ii, jj = np.broadcast_arrays(ii, jj)
        ok = (ii >= 0) & (ii < self.n) & (jj >= 0) & (jj < self.n) & (a > 0)
        if not ok.any():
            return
        ii, jj, a = ii[ok].astype(int), jj[ok].astype(int), a[ok]
        box = (slice(ii.min(), ii.max() + 1), slice(jj.min(), jj.max() + 1))
        alpha = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), np.float32)
        np.maximum.at(alpha, (ii - box[0].start, jj - box[1].start), a.astype(np.float32))
        self.paint(box, alpha, value, label)


def _ramp(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _smooth(x: float) -> float:
    x = _ramp(x)
    return x * x * (3 - 2 * x)


@dataclass
class _Vertebra:
    name: str
    z_inf: float
    z_sup: float
    disc_below: float
    width: float
    depth: float
    tp: float
    rib: bool

    @property
    def height(self) -> float:
        return self.z_sup - self.z_inf

    @property
    def centre(self) -> float:
        return 0.5 * (self.z_inf + self.z_sup)


class _Torso:
    """The drawn anatomy of one patient and the per-plane renderer."""

    def __init__(self, patient: str, seed: int, cfg: L3PhantomConfig) -> None:
        g = rng(seed, "l3", patient)
        self.cfg = cfg
        u = g.random()
        if u < cfg.transitional_fraction:
            self.variant = "six_lumbar" if g.random() < 0.5 else "rib13"
        else:
            self.variant = "normal"
            g.random()
        self.index_order = (
            "head_to_feet" if g.random() < cfg.head_to_feet_fraction else "feet_to_head"
        )
        self.scout = bool(g.random() < cfg.scout_fraction)
        self.slice_mm = round(float(g.uniform(cfg.slice_min_mm, cfg.slice_max_mm)), 3)
        half_fov = 0.5 * cfg.matrix * cfg.pixel_mm
        # --- body size and position
        size = g.random()
        self.bx = float(g.uniform(-15, 15))
        self.by = float(g.uniform(-10, 20))
        self.a0 = 140.0 + 50.0 * float(np.clip(size + g.normal(0, 0.12), 0, 1))
        self.b0 = 100.0 + 40.0 * float(np.clip(size + g.normal(0, 0.15), 0, 1))
        self.a_max = half_fov - abs(self.bx) - 8.0
        self.hip = float(g.uniform(0.04, 0.10))
        self.fat0 = 10.0 + 30.0 * float(np.clip(0.6 * size + 0.4 * g.random(), 0, 1))
        self.wall = float(g.uniform(10, 16))
        self.phase = g.uniform(0, 2 * np.pi, 4)
        self.back_y = self.by - 0.9 * self.b0 * 0.88  # flat back on the table
        self.y_spine0 = self.back_y + 0.6 * self.fat0 + 75.0 + float(g.uniform(-5, 5))
        self.lordosis = float(g.uniform(4, 14))
        # --- HU values (§D1)
        self.hu = {
            "fat": float(g.uniform(-110, -85)),
            "muscle": float(g.uniform(38, 46)),
            "viscera": float(g.uniform(32, 38)),
            "liver": float(g.uniform(50, 62)),
            "spleen": float(g.uniform(40, 50)),
            "kidney": float(g.uniform(25, 35)),
            "blood": float(g.uniform(35, 45)),
            "disc": float(g.uniform(70, 90)),
            "cancellous": float(g.uniform(150, 250)),
            "cortical": float(g.uniform(700, 1000)),
            "csf": float(g.uniform(12, 22)),
            "lung": float(g.uniform(-870, -820)),
            "gas": -950.0,
        }
        self.visceral_fat = float(np.clip(0.1 + 0.3 * size + g.normal(0, 0.05), 0.05, 0.5))
        n_waves = 7
        direction = g.normal(size=(n_waves, 3))
        direction[:, 2] *= 0.6
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        k = 2 * np.pi / g.uniform(28, 60, n_waves)
        self.waves = np.column_stack([direction * k[:, None], g.uniform(0, 2 * np.pi, n_waves)])
        # --- spine, counted up from the sacrum
        z_s1 = round(float(g.uniform(-300, -100)), 3)
        self.z_s1 = z_s1
        scale = float(g.uniform(0.93, 1.07))
        size_xy = float(g.uniform(0.94, 1.06))
        self.vertebrae: list[_Vertebra] = []
        z = z_s1
        for name in NAMES:
            base_h, base_d, tp = HEIGHT_MM[name], DISC_BELOW_MM[name], TP_MM[name]
            width, depth = WIDTH_MM[name], DEPTH_MM[name]
            if self.variant == "six_lumbar" and name == "T12":  # a rib-free, lumbar-type T12
                base_h, base_d, tp, width, depth = 24.0, 9.0, 34.0, 41.0, 30.5
            h = base_h * float(np.clip(scale * g.uniform(0.97, 1.03), 0.9, 1.1))
            disc = base_d * float(g.uniform(0.85, 1.15))
            z += disc
            self.vertebrae.append(
                _Vertebra(
                    name=name,
                    z_inf=round(z, 3),
                    z_sup=round(z + h, 3),
                    disc_below=disc,
                    width=width * size_xy,
                    depth=depth * size_xy,
                    tp=tp * float(g.uniform(0.95, 1.05)),
                    rib=self._has_rib(name),
                )
            )
            z += h
        tp_l3 = self.level("L3").tp
        for v in self.vertebrae:
            if v.name != "L3":
                v.tp = min(v.tp, 0.94 * tp_l3)
        self.vz = np.array([v.centre for v in self.vertebrae])
        self.vw = np.array([v.width for v in self.vertebrae])
        self.vd = np.array([v.depth for v in self.vertebrae])
        self.z_lord = self.level("L3").z_inf - 0.5 * self.level("L3").disc_below
        self.sacral_slope = float(g.uniform(0.45, 0.7))
        self.ala = 50.0 * size_xy * float(g.uniform(0.95, 1.05))
        # --- coverage
        top = self.level("T10").z_sup + float(g.uniform(-20, 30))
        bottom = z_s1 - float(g.uniform(50, 110))
        self.n_slices = int(math.floor((top - bottom) / self.slice_mm)) + 1
        self.z0 = round(bottom, 3)
        # --- organs relative to the counted levels
        span = 0.5 * (self.level("L1").z_sup - self.level("T12").z_inf + 35.0)
        c = {v.name: v.centre for v in self.vertebrae}
        self.kidneys = []
        for side, (up, low) in ((1, ("T12", "L3")), (-1, ("T11", "L2"))):
            z_top = c[up] + float(g.uniform(-1, 1)) * span / 3
            z_bot = c[low] + float(g.uniform(-1, 1)) * span / 3
            if z_top - z_bot < 80:
                mid = 0.5 * (z_top + z_bot)
                z_top, z_bot = mid + 40, mid - 40
            self.kidneys.append(
                {
                    "side": side,
                    "z": (z_bot, z_top),
                    "rx": float(g.uniform(25, 30)),
                    "ry": float(g.uniform(20, 24)),
                    "angle": float(g.uniform(0.4, 0.7)),
                    "dx": float(g.uniform(-5, 8)),
                }
            )
        self.z_liver = c["L2"] + float(g.uniform(-20, 15))
        self.z_spleen = c["T12"] + float(g.uniform(-25, 10))
        self.z_lung = c["T12"] + float(g.uniform(0, 15))
        self.z_bif = c["L4"] + float(g.uniform(-10, 8))
        self.z_ivc = c["L5"] + float(g.uniform(-8, 8))
        self.z_psoas = self.level("L1").z_sup - float(g.uniform(0, 10))
        l4 = self.level("L4")
        self.z_crest = l4.z_inf - 0.5 * l4.disc_below + float(g.uniform(-12, 10))
        a_crest = self.body_axes(self.z_crest)[0]
        self.ilium0 = a_crest - self.fat(self.z_crest) - self.wall - 10.0
        self.ribs = self._make_ribs(g)

    # -- anatomy helpers
    def _has_rib(self, name: str) -> bool:
        if name.startswith("T"):
            return not (self.variant == "six_lumbar" and name == "T12")
        return self.variant == "rib13" and name == "L1"

    def level(self, name: str) -> _Vertebra:
        return next(v for v in self.vertebrae if v.name == name)

    def body_axes(self, z: float) -> tuple[float, float, float]:
        """Lateral, anterior and posterior semi-axes of the body outline at z."""
        ph = self.phase
        a = self.a0 * (1 + 0.04 * math.sin(2 * math.pi * z / 310 + ph[0]))
        a *= 1 + self.hip * _smooth((self.z_crest + 10 - z) / 90)
        b = self.b0 * (1 + 0.05 * math.sin(2 * math.pi * z / 260 + ph[1]))
        return min(a, self.a_max), 1.1 * b, 0.9 * b

    def fat(self, z: float) -> float:
        return self.fat0 * (1 + 0.15 * math.sin(2 * math.pi * z / 230 + self.phase[2]))

    def spine_y(self, z: float) -> float:
        """AP position of the vertebral body centre (lumbar lordosis peaks at L3/L4)."""
        return self.y_spine0 + self.lordosis * math.exp(-0.5 * ((z - self.z_lord) / 70.0) ** 2)

    def sacrum_y(self, z: float) -> float:
        """Centre of the sacral body below the S1 endplate (tilting posteriorly)."""
        drop = min(self.sacral_slope * max(self.z_s1 - z, 0.0), 45.0)
        return self.spine_y(self.z_s1) - drop

    def body_dims(self, z: float) -> tuple[float, float]:
        return float(np.interp(z, self.vz, self.vw)), float(np.interp(z, self.vz, self.vd))

    def _make_ribs(self, g: np.random.Generator) -> np.ndarray:
        """Rib centre lines as points (x, y, z, half height) at ~pixel/3 spacing."""
        ribbed = [v for v in self.vertebrae if v.rib]
        floor = ribbed[0].z_inf + 3.0  # no rib below the last rib-bearing vertebra
        step = self.cfg.pixel_mm / 3.0
        out = []
        for rank, v in enumerate(ribbed):
            if self.variant == "rib13":
                length, drop = (
                    RIB13 if rank == 0 else (RIB_LENGTH_MM[rank - 1], RIB_DROP_MM[rank - 1])
                )
            else:
                length, drop = RIB_LENGTH_MM[rank], RIB_DROP_MM[rank]
            z_att = v.z_sup - 0.25 * v.height
            y_c = self.spine_y(z_att)
            a, b_ant, _ = self.body_axes(z_att)
            f = self.fat(z_att)
            ar, br_ant = a - f - 8.0, b_ant - 1.1 * f - 8.0
            for side in (1, -1):
                ln = length * float(g.uniform(0.88, 1.12))
                dr = min(drop * float(g.uniform(0.85, 1.15)), z_att - 6.0 - floor)
                canal = y_c - v.depth / 2 - 9.0
                head = (self.bx + side * (v.width / 2 - 1.0), y_c - v.depth / 2 + 5.0)
                tip_x, tip_dy = _tp_tip(v)
                tub = (self.bx + side * tip_x, canal + tip_dy)
                # the rib cage: an ellipse through the rib angle just lateral to the erectors
                th_a = math.asin(min((v.tp + 30.0) / ar, 0.95))
                br_post = (self.by - (canal - 20.0)) / math.cos(th_a)
                theta = np.linspace(th_a, math.pi, 800)
                cx = self.bx + side * ar * np.sin(theta)
                cy = self.by - np.where(np.cos(theta) > 0, br_post, br_ant) * np.cos(theta)
                px = np.concatenate([[head[0], tub[0]], cx])
                py = np.concatenate([[head[1], tub[1]], cy])
                seg = np.hypot(np.diff(px), np.diff(py))
                cum = np.concatenate([[0.0], np.cumsum(seg)])
                s = np.arange(0.0, min(ln, cum[-1]), step)
                xs, ys = np.interp(s, cum, px), np.interp(s, cum, py)
                frac = s / ln
                zs = z_att - dr * frac
                hh = 5.0 - 1.5 * frac
                out.append(np.column_stack([xs, ys, zs, hh]))
        return np.concatenate(out) if out else np.zeros((0, 4))

    # -- the renderer
    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x of columns, y of rows, and the RAS affine."""
        n, p = self.cfg.matrix, self.cfg.pixel_mm
        affine = np.diag([-p, -p, self.slice_mm, 1.0])
        affine[:3, 3] = [p * (n - 1) / 2, p * (n - 1) / 2, self.z0]
        xs = affine[0, 3] - p * np.arange(n)
        ys = affine[1, 3] - p * np.arange(n)
        return xs, ys, affine

    def plane(self, xs: np.ndarray, ys: np.ndarray, z: float, labels: bool = False) -> _Canvas:
        """Noise-free HU (and tissue labels) of the axial plane at z."""
        cv = _Canvas(xs, ys, self.cfg.pixel_mm, labels)
        hu, bx, by = self.hu, self.bx, self.by
        a, b_ant, b_post = self.body_axes(z)
        f = self.fat(z)
        w, d = self.body_dims(z)
        # AP centre of the vertebral body, or of the sacral body in the pelvis
        yc = self.sacrum_y(z) if z < self.z_s1 else self.spine_y(z)
        if self.cfg.table:
            self._table(cv)
        # body wall: subcutaneous fat, muscle, then the abdominal cavity
        cv.fill(hu["fat"], "fat", bx, by, a, b_ant, b_post, ymin=self.back_y)
        ax, ay, ay_post = a - f, b_ant - 1.1 * f, b_post - 0.6 * f
        cv.fill(hu["muscle"], "muscle", bx, by, ax, ay, ay_post, ymin=self.back_y + 0.6 * f)
        ac, bc = a - f - self.wall, b_ant - 1.1 * f - 0.8 * self.wall
        box, alpha = cv.ellipse(bx, by, ac, bc, max(by - (yc - 30.0), 5.0))
        if box is not None:
            cv.paint(box, alpha, self._viscera(cv, box, z, alpha), None)
        # retroperitoneal fat around the spine, kidneys and great vessels
        rp = 0.45 + 0.6 * self.visceral_fat
        cv.fill(hu["fat"] + 10, "fat", bx, yc + 8, rp * ac, 30 + 25 * rp, 40.0)
        self._back_muscles(cv, z, ac, yc, w, d)
        self._organs(cv, z, ac, bc, yc, w)
        self._vessels_psoas(cv, z, yc, w, d)
        self._ribs(cv, z)
        self._pelvis(cv, z, yc)
        self._spine(cv, z, yc, w, d)
        return cv

    def _muscle(self, cv: _Canvas, value: float, label: str, *args, **kwargs) -> None:
        """A muscle (arguments of :meth:`_Canvas.ellipse`) in a 2.5 mm fat plane."""
        cx, cy, ax, ay = args
        cv.fill(self.hu["fat"] + 20, "fat", cx, cy, ax + 2.5, ay + 2.5, **kwargs)
        cv.fill(value, label, cx, cy, ax, ay, **kwargs)

    def _back_muscles(self, cv: _Canvas, z: float, ac: float, yc: float, w: float, d: float):
        """Erector spinae, quadratus lumborum and gluteal muscles."""
        m, bx = self.hu["muscle"] + 3, self.bx
        l1, t12 = self.level("L1"), self.level("T12")
        for side in (1, -1):
            if z >= self.z_s1:
                big = 1.0 + 0.3 * _ramp((l1.z_sup - z) / 120)
                cx, cy = bx + side * (6 + 21 * big), yc - d / 2 - 38
                self._muscle(cv, m, "muscle", cx, cy, 21 * big, 19 * big)
            else:
                shrink = 1 - 0.6 * _ramp((self.z_s1 - z) / 70)
                self._muscle(cv, m, "muscle", bx + side * 26, yc - 42, 20 * shrink, 11 * shrink)
            if self.z_crest - 10 < z < t12.z_inf:
                grow = 0.5 + 0.5 * _ramp((t12.z_inf - z) / 80)
                cx, cy = bx + side * (w / 2 + 42), yc - 24
                self._muscle(cv, m - 1, "muscle", cx, cy, 17 * grow, 10 * grow, angle=-side * 0.3)
            if z < self.z_crest - 10:
                gl = _ramp((self.z_crest - 10 - z) / 70)
                cx, cy = bx + side * (self.ilium_half(z) - 8), yc - 22
                ang = side * 0.6
                self._muscle(cv, m - 1, "muscle", cx, cy, 24 + 16 * gl, 14 + 12 * gl, angle=ang)

    def _table(self, cv: _Canvas) -> None:
        top = self.back_y - 1.0
        box = cv.box(self.bx, top - 30.0, 240.0, 31.0)
        if box is None:
            return
        x = cv.xs[box[0]][:, None] - self.bx
        y = cv.ys[box[1]][None, :]
        surface = top + 0.0006 * x * x
        dist = np.abs(y - (surface - 4.0)) - 4.0
        alpha = np.clip(0.5 - dist / cv.p, 0, 1) * (np.abs(x) < 225)
        cv.paint(box, alpha, 150.0, "table")

    def _viscera(self, cv: _Canvas, box, z: float, alpha: np.ndarray) -> np.ndarray:
        """Visceral content: soft tissue with fat islands and bowel gas (a wave texture)."""
        x = cv.xs[box[0]][:, None]
        y = cv.ys[box[1]][None, :]
        t = np.zeros(alpha.shape, np.float32)
        for kx, ky, kz, ph in self.waves:
            t += np.cos(kx * x + ky * y + (kz * z + ph))
        t /= math.sqrt(len(self.waves) / 2)
        thr = NormalDist().inv_cdf(1 - self.visceral_fat)
        fat = np.clip((t - thr) / 0.3, 0, 1)
        gas = np.clip((-t - 2.1) / 0.15, 0, 1)
        soft = self.hu["viscera"] + 2.0 * np.cos(0.07 * x - 0.05 * y + 0.03 * z)
        value = soft + fat * (self.hu["fat"] - soft)
        value = value + gas * (self.hu["gas"] - value)
        if cv.lab is not None:
            lab = cv.lab[box]
            inside = alpha > 0.5
            lab[inside] = TISSUE["viscera"]
            lab[inside & (fat > 0.5)] = TISSUE["fat"]
            lab[inside & (gas > 0.5)] = TISSUE["gas"]
        return value

    def _organs(self, cv: _Canvas, z: float, ac: float, bc: float, yc: float, w: float) -> None:
        hu, bx, by = self.hu, self.bx, self.by
        # liver: right upper quadrant, tapering to a lateral-posterior tip
        s = _ramp((z - self.z_liver) / 150.0)
        if s > 0:
            p = math.sqrt(s)
            cx = bx + ac * (0.38 + 0.3 * (1 - p))
            cy = by + bc * 0.05 - 15 * (1 - p)
            ax, ay = ac * (0.62 * p + 0.08), bc * (0.75 * p + 0.1)
            cv.fill(hu["liver"], "liver", cx, cy, ax, ay, 0.9 * ay, angle=0.25)
        # spleen: along the left posterolateral wall
        s = _ramp((z - self.z_spleen) / 40.0) * _ramp((self.z_spleen + 120 - z) / 40.0)
        if s > 0:
            p = math.sqrt(s)
            cx, cy = bx - ac * 0.62, yc + 5
            cv.fill(hu["spleen"], "spleen", cx, cy, 45 * p + 4, 0.13 * ac * p + 4, angle=-0.9)
        # lung bases in the posterior costophrenic recesses
        s = _ramp((z - self.z_lung) / 70.0)
        if s > 0:
            p = math.sqrt(s)
            for side in (1, -1):
                rx, ry = 0.33 * ac * p + 2, 22 * p + 2
                cx, cy = bx + side * (w / 2 + 12 + 0.9 * rx), yc - 12
                cv.fill(hu["lung"], "lung", cx, cy, rx, ry, angle=side * 0.4)
        # kidneys in perirenal fat, with a renal sinus facing anteromedially
        for k in self.kidneys:
            z_bot, z_top = k["z"]
            zc, rz = 0.5 * (z_bot + z_top), 0.5 * (z_top - z_bot)
            side = k["side"]
            x0 = bx + side * (w / 2 + 28 + k["rx"] + k["dx"] + 0.15 * (zc - z))
            y0 = yc - 12 + 0.08 * (zc - z)
            ang = -side * k["angle"]
            dz = (z - zc) / (rz + 10)
            if abs(dz) < 1:
                q = math.sqrt(1 - dz * dz)
                cv.fill(hu["fat"], "fat", x0, y0, (k["rx"] + 9) * q, (k["ry"] + 9) * q, angle=ang)
            dz = (z - zc) / rz
            if abs(dz) < 1:
                q = math.sqrt(1 - dz * dz)
                cv.fill(hu["kidney"], "kidney", x0, y0, k["rx"] * q, k["ry"] * q, angle=ang)
            if abs(dz) < 0.5:
                q = math.sqrt(1 - 4 * dz * dz)
                cx, cy = x0 - side * k["rx"] * 0.45, y0 + 4
                cv.fill(hu["fat"] + 30, "fat", cx, cy, 9 * q, 6 * q, angle=ang)

    def _vessels_psoas(self, cv: _Canvas, z: float, yc: float, w: float, d: float) -> None:
        hu, bx = self.hu, self.bx
        front = (yc + d / 2) if z >= self.z_s1 else (yc + 17)
        if z >= self.z_bif:
            cv.fill(hu["blood"], "vessel", bx - 14, front + 13, 11, 11)
        else:
            off = min(9 + 0.45 * (self.z_bif - z), 60)
            for side in (1, -1):
                cv.fill(hu["blood"], "vessel", bx + side * off, front + 12, 6.5, 6.5)
        if z >= self.z_ivc:
            cv.fill(hu["blood"] - 2, "vessel", bx + 20, front + 12, 12, 9)
        else:
            off = min(10 + 0.4 * (self.z_ivc - z), 55)
            for side in (1, -1):
                cv.fill(hu["blood"] - 2, "vessel", bx + side * off, front + 6, 7.5, 7.5)
        if z < self.z_psoas:
            length = max(self.z_psoas - self.z_s1, 1.0)
            r = 5.0 + 19.0 * _ramp((self.z_psoas - z) / length) ** 0.8
            below = max(self.z_s1 - z, 0.0)
            for side in (1, -1):
                x = bx + side * (w / 2 + 0.85 * r + 0.45 * below)
                y = (yc + 2) if below == 0 else (yc + 8 + 0.5 * below)
                self._muscle(cv, hu["muscle"], "psoas", x, y, r, 0.85 * r)

    def _ribs(self, cv: _Canvas, z: float) -> None:
        pts = self.ribs
        if len(pts) == 0:
            return
        dz = np.abs(pts[:, 2] - z)
        sel = dz < pts[:, 3] + 1.0
        if not sel.any():
            return
        q = pts[sel]
        weights = np.clip(q[:, 3] + 0.5 - dz[sel], 0, 1)
        cv.splat(q[:, 0], q[:, 1], 3.0, weights, 650.0, "rib")

    def ilium_half(self, z: float) -> float:
        """Largest lateral reach of an iliac wing at z (widest at the crest)."""
        return self.ilium0 - 0.45 * max(self.z_crest - z, 0.0)

    def _pelvis(self, cv: _Canvas, z: float, yc: float) -> None:
        """Iliac wings below the crest: curved plates from the sacroiliac joint to the anterior
        superior iliac spine, the crest highest posteriorly; the iliacus on their inner side."""
        if z > self.z_crest + 1:
            return
        zr = max(self.z_s1 - z, 0.0)
        ala = self.ala if zr < 40 else max(self.ala - 0.3 * (zr - 40), 28.0)
        xl = self.ilium_half(z)
        n = int(250 / (cv.p / 3.0))
        u = np.linspace(0, 1, n)
        crest = np.minimum(
            self.z_crest - 11.0 - 60.0 * ((u - 0.3) ** 2 - 0.09) / 0.49, self.z_crest
        )
        wgt = np.clip(crest - z + 0.5, 0, 1)
        keep = wgt > 0
        if not keep.any():
            return
        uu = u[:, None]
        y_ref = self.spine_y(self.z_s1)  # the wings stay put while the sacrum tilts back
        for side in (1, -1):
            p0 = np.array([self.bx + side * (ala + 4.0), yc - 8.0])
            c = np.array([self.bx + side * (xl + 10.0), y_ref - 5.0])
            p1 = np.array([self.bx + side * (xl - 10.0), y_ref + 65.0])
            pts = (1 - uu) ** 2 * p0 + 2 * uu * (1 - uu) * c + uu**2 * p1
            to_centre = np.array([self.bx, yc + 40.0]) - pts
            inner = pts + 9.0 * to_centre / np.linalg.norm(to_centre, axis=1, keepdims=True)
            il = keep & (crest - z > 8) & (u > 0.15)
            cv.splat(inner[il, 0], inner[il, 1], 8.0, wgt[il], self.hu["muscle"], "muscle")
            cv.splat(pts[keep, 0], pts[keep, 1], 4.0 - 1.5 * u[keep], wgt[keep], 750.0, "ilium")

    def _spine(self, cv: _Canvas, z: float, yc: float, w: float, d: float) -> None:
        hu, bx = self.hu, self.bx
        if z < self.z_s1:
            self._sacrum(cv, z, yc)
            return
        canal_y = yc - d / 2 - 9.0
        for v in self.vertebrae:
            if v.z_inf - 0.6 * v.disc_below <= z <= v.z_sup - 0.08 * v.height:  # neural arch
                cv.fill(450.0, "cortical", bx, canal_y, 17.0, 13.5)
            if v.z_inf - 0.4 * v.disc_below <= z <= v.z_inf + 0.5 * v.height:  # spinous process
                sp = 32.0 if v.rib else 28.0
                cv.fill(450.0, "cortical", bx, canal_y - 12.0 - sp / 2, 3.5, sp / 2)
            if v.z_inf + 0.35 * v.height <= z <= v.z_sup - 0.15 * v.height:  # transverse proc.
                for side in (1, -1):
                    cx, dy, half, tilt = _tp_geometry(v)
                    tx, ty = bx + side * cx, canal_y + dy
                    cv.fill(450.0, "cortical", tx, ty, half, 3.5, angle=-side * tilt)
        inside = next((v for v in self.vertebrae if v.z_inf <= z <= v.z_sup), None)
        if inside is None:
            cv.fill(hu["disc"], "disc", bx, yc, w / 2 * 1.03, d / 2 * 1.03)
        elif min(z - inside.z_inf, inside.z_sup - z) < 1.2:  # endplate
            cv.fill(hu["cortical"] * 0.8, "cortical", bx, yc, w / 2, d / 2)
        else:
            cv.bone(hu["cortical"], hu["cancellous"], "cancellous", bx, yc, w / 2, d / 2)
        lumbar_canal = z < self.level("T12").z_sup
        cv.fill(hu["csf"], "csf", bx, canal_y, 11.5 if lumbar_canal else 9.5, 8.0)

    def _sacrum(self, cv: _Canvas, z: float, yc: float) -> None:
        """Sacral alae (meeting the iliac wings) and body, tilting posteriorly, sacral canal."""
        hu, bx = self.hu, self.bx
        zr = self.z_s1 - z
        ala = self.ala if zr < 40 else max(self.ala - 0.3 * (zr - 40), 28.0)
        thick = max(14.0 - 0.05 * zr, 8.0)
        cv.bone(hu["cortical"] * 0.7, hu["cancellous"] + 30, "sacrum", bx, yc - 6, ala, thick)
        body_x, body_y = max(26.0 - 0.08 * zr, 14.0), max(17.0 - 0.06 * zr, 9.0)
        if zr < 1.2:
            cv.fill(hu["cortical"] * 0.8, "sacrum", bx, yc, body_x, body_y)
        else:
            cv.bone(hu["cortical"] * 0.8, hu["cancellous"], "sacrum", bx, yc, body_x, body_y)
        cv.fill(hu["csf"] - 20, "csf", bx, yc - 19, 11.0 * (1 - 0.3 * _ramp(zr / 90)), 4.5)
        cv.fill(450.0, "sacrum", bx, yc - 28, 3.5, 5.0)


def _tp_geometry(v: _Vertebra) -> tuple[float, float, float, float]:
    """Transverse process of one side: centre offset from the midline, AP offset from the
    canal centre, semi-length and tilt towards posterior (thoracic ones point backwards)."""
    tilt = 0.45 if v.rib else 0.12
    half = v.tp / 2 - 3.0
    return v.tp / 2 + 6.0, (-2.0 if v.rib else 3.0) - (v.tp / 2) * math.sin(tilt), half, tilt


def _tp_tip(v: _Vertebra) -> tuple[float, float]:
    """Lateral and AP (from the canal centre) position of a transverse process tip."""
    cx, dy, half, tilt = _tp_geometry(v)
    return cx + half * math.cos(tilt), dy - half * math.sin(tilt)


# ---------------------------------------------------------------------------------- public API


def make_patient(patient: str, seed: int, cfg: L3PhantomConfig, labels: bool = False) -> dict:
    """Generate one patient: ``ct`` (int16 HU, (i, j, k), k feet→head), its RAS ``affine`` and
    JSON-able ``params`` (see the module docstring). ``labels=True`` adds ``labels``: the
    noise-free tissue map (:data:`TISSUE`, uint8) at each slice centre."""
    torso = _Torso(patient, seed, cfg)
    xs, ys, affine = torso.grid()
    t, n = torso.slice_mm, torso.n_slices
    n_sub = max(3, math.ceil(t / 1.25))
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * t
    ct = np.empty((cfg.matrix, cfg.matrix, n), np.float32)
    lab = np.empty((cfg.matrix, cfg.matrix, n), np.uint8) if labels else None
    for k in range(n):
        zc = torso.z0 + k * t
        acc = np.zeros((cfg.matrix, cfg.matrix), np.float32)
        for off in offsets:
            acc += torso.plane(xs, ys, zc + off).img
        ct[:, :, k] = acc / n_sub
        if lab is not None:
            lab[:, :, k] = torso.plane(xs, ys, zc, labels=True).lab
    if cfg.noise_hu > 0:
        g = rng(seed, "l3-noise", patient)
        ct += g.normal(0.0, cfg.noise_hu, ct.shape).astype(np.float32)
    ct = np.clip(np.round(ct), -1024, 3071).astype(np.int16)
    z = torso.z0 + t * np.arange(n)
    l3 = torso.level("L3")
    inside = np.flatnonzero((z >= l3.z_inf) & (z <= l3.z_sup))
    if len(inside) < 2:
        raise VoxflowError(f"l3 phantom {patient}: only {len(inside)} slice(s) inside L3")
    levels = {v.name: [v.z_inf, v.z_sup] for v in torso.vertebrae}
    levels["S1"] = [round(torso.z_s1 - 30.0, 3), torso.z_s1]
    a, b_ant, b_post = torso.body_axes(l3.centre)
    params = {
        "patient": patient,
        "variant": torso.variant,
        "slice_mm": t,
        "n_slices": n,
        "l3_first": int(inside[0]),
        "l3_last": int(inside[-1]),
        "index_order": torso.index_order,
        "scout": torso.scout,
        "matrix": cfg.matrix,
        "pixel_mm": cfg.pixel_mm,
        "z_first_mm": torso.z0,
        "levels": levels,
        "ribs_on": [v.name for v in torso.vertebrae if v.rib][::-1],
        "rib_free": [v.name for v in torso.vertebrae if not v.rib][::-1],
        "l3_height_mm": round(l3.height, 3),
        "transverse_process_mm": {v.name: round(v.tp, 2) for v in torso.vertebrae},
        "kidneys_z_mm": {
            ("right" if k["side"] > 0 else "left"): [round(k["z"][0], 2), round(k["z"][1], 2)]
            for k in torso.kidneys
        },
        "iliac_crest_z_mm": round(torso.z_crest, 3),
        "psoas_top_z_mm": round(torso.z_psoas, 3),
        "aortic_bifurcation_z_mm": round(torso.z_bif, 3),
        "body": {
            "centre_xy_mm": [round(torso.bx, 3), round(torso.by, 3)],
            "lateral_mm_at_l3": round(a, 2),
            "ap_mm_at_l3": round(0.5 * (b_ant + b_post), 2),
            "fat_mm": round(torso.fat0, 2),
            "spine_y_mm_at_l3": round(torso.spine_y(l3.centre), 3),
        },
        "hu": {k: round(v, 2) for k, v in torso.hu.items()},
        "noise_hu": cfg.noise_hu,
    }
    out = {"ct": ct, "affine": affine, "params": params}
    if lab is not None:
        out["labels"] = lab
    return out


def scout_image(ct: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coronal localizer: mean HU over the AP axis as a one-slice coronal image (i = column
    towards patient left, j = row towards the feet) and its RAS affine."""
    proj = ct.astype(np.float32).mean(axis=1)[:, ::-1]  # (i, row): row 0 = most superior
    p, t = abs(affine[0, 0]), affine[2, 2]
    n_j, n_k = ct.shape[1], ct.shape[2]
    out = np.eye(4)
    out[:3, 0] = affine[:3, 0]
    out[:3, 1] = [0.0, 0.0, -t]
    out[:3, 2] = [0.0, -p, 0.0]
    y_mid = affine[1, 3] + affine[1, 1] * (n_j - 1) / 2
    out[:3, 3] = [affine[0, 3], y_mid, affine[2, 3] + t * (n_k - 1)]
    return np.round(proj)[:, :, None], out


_DICOM_NAME = re.compile(r"^(IM|SC)\d{4}\.dcm$")


def write_patient(patient: dict, root: str | Path, truth_root: str | Path, seed: int) -> None:
    """Write one patient: ``<root>/<patient>/IM*.dcm`` (axial CT), for a scout patient also
    ``SC0001.dcm`` (coronal localizer, its own series), and ``<truth_root>/<patient>/params.json``.
    Stale ``IM*/SC*`` files of an earlier run in the folder are removed."""
    from voxflow.io.dicom_write import write_series

    params = patient["params"]
    name = params["patient"]
    folder = Path(root) / name
    written = write_series(
        folder, patient["ct"], patient["affine"], name, "CT", "ABDOMEN/PELVIS", seed=seed
    )
    if params["scout"]:
        image, affine = scout_image(patient["ct"], patient["affine"])
        written += write_series(
            folder,
            image,
            affine,
            name,
            "CT",
            "SCOUT",
            seed=seed,
            series_number=1,
            prefix="SC",
            series_key="scout",
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        )
    keep = {p.name for p in written}
    for path in folder.iterdir():
        if _DICOM_NAME.match(path.name) and path.name not in keep:
            path.unlink()
    truth = Path(truth_root) / name
    write_json(truth / "params.json", params)


def label_rows(params: list[dict]) -> list[dict]:
    """Rows of ``l3_labels.csv``, sorted by patient, with the L3 slice range expressed in each
    patient's ``index_order`` (head_to_feet: index = n_slices - 1 - k, first <= last)."""
    rows = []
    for p in sorted(params, key=lambda p: p["patient"]):
        first, last, order = int(p["l3_first"]), int(p["l3_last"]), p["index_order"]
        if order == "head_to_feet":
            n = int(p["n_slices"])
            first, last = n - 1 - last, n - 1 - first
        elif order != "feet_to_head":
            raise VoxflowError(
                f"l3 labels {p['patient']}: index_order {order!r} not in {INDEX_ORDERS}"
            )
        rows.append(
            {"patient": p["patient"], "l3_first": first, "l3_last": last, "index_order": order}
        )
    return rows


def write_labels(rows: list[dict], path: str | Path) -> None:
    """Write ``l3_labels.csv`` (``patient,l3_first,l3_last,index_order``) atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["patient", "l3_first", "l3_last", "index_order"], lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in writer.fieldnames})
    write_text_atomic(path, buf.getvalue())
