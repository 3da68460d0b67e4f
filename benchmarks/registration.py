"""Benchmark: rigid MR -> CT registration, voxflow (SimpleITK) vs ANTs, on real anatomy.

    .venv/bin/python benchmarks/registration.py [--starts 20] [--seed 0] [--quick]
        [--ants-pairs 3] [--ants-sweep] [--ants-python /path/to/python-with-antspyx]

The pair: the moving MR is nilearn's MNI152 2009a T1 at 1 mm (skull-stripped, as nilearn ships
it). The fixed CT is synthesised in Hounsfield units from nilearn's GM/WM templates and brain
mask (GM 40, WM 30, CSF 8, 2 mm of extra-axial CSF, a 7 mm skull shell of 1000-1800 HU with
dense tables and a softer diploe, 5 mm of scalp at 35 HU, air -1000), resampled through the
truth transform onto a 0.5 x 0.5 x 5 mm axial grid (each slice the mean of five 1 mm sub-slices,
i.e. a thick-slice partial-volume average) plus Gaussian noise (5 HU).

Each start is a seeded rigid misalignment, uniform within +-15 deg about each axis (about the
brain centre) and +-20 mm along each axis, applied to the MR's header, so the truth maps CT
points to the moved MR frame. TRE is the mean distance between estimated and true positions of
the CT's brain voxels. Goal: TRE <= 0.3 mm, voxflow time <= 0.25 x ANTs time on the same pairs
and no failures (TRE > 2 mm) over the sweep.

ANTs (``antspyx``) is optional. antspyx 0.6.3 pins numpy<2.4 and scipy<1.16, which conflicts
with the project's environment, so keep it in a separate venv and pass its interpreter with
``--ants-python``; ANTs then runs in a subprocess of this script (``--ants-worker``) on the same
images written to a temporary folder. ANTs gets ``type_of_transform='Rigid'`` with its defaults
(centre-of-mass start, MI 32 bins, 20 % regular sampling, shrink 6x4x2x1) and the CT as stored
(HU + 1024, non-negative, so its centre-of-mass start is meaningful); its time is the
``ants.registration`` call alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_TRE_MM = 0.3
GOAL_RATIO = 0.25
FAIL_TRE_MM = 2.0
CT_SPACING = (0.5, 0.5, 5.0)
SUBSLICES = 5


# --------------------------------------------------------------------------- ANTs worker


def ants_worker(fixed: str, moving: str, out_tfm: str) -> None:
    """Run ANTs rigid on two files (in whatever interpreter has antspyx); print JSON timing."""
    import resource
    import shutil

    import ants

    f = ants.image_read(fixed)
    m = ants.image_read(moving)

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    reg = ants.registration(f, m, type_of_transform="Rigid")
    seconds, cpu_s = time.perf_counter() - t0, cpu() - c0
    shutil.copyfile(reg["fwdtransforms"][0], out_tfm)
    print(json.dumps({"seconds": seconds, "cpu": cpu_s, "ants": ants.__version__}))


# --------------------------------------------------------------------------- the test pair


def nib_to_sitk(img):
    """A nibabel image (RAS affine) as a float32 SimpleITK image (LPS)."""
    import numpy as np
    import SimpleITK as sitk

    arr = np.asarray(img.get_fdata(), dtype=np.float32)
    aff = np.asarray(img.affine, dtype=np.float64)
    out = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr, (2, 1, 0))))
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    flip = np.diag([-1.0, -1.0, 1.0])
    out.SetSpacing(tuple(float(s) for s in spacing))
    out.SetDirection(tuple((flip @ (aff[:3, :3] / spacing)).ravel().tolist()))
    out.SetOrigin(tuple((flip @ aff[:3, 3]).tolist()))
    return out


def mni_anatomy(pad_mm: int = 24, mr_skull: bool = False) -> dict:
    """MNI152 T1 (moving MR) and a head in HU on the same (padded) 1 mm grid, LPS. With
    ``mr_skull`` the MR gets T1-like head layers (dark CSF rim and skull tables, fatty diploe and
    bright scalp fat) on the padded grid instead of nilearn's skull-stripped T1."""
    import numpy as np
    import SimpleITK as sitk
    from nilearn import datasets
    from scipy import ndimage

    t1 = nib_to_sitk(datasets.load_mni152_template(resolution=1))
    gm = sitk.GetArrayFromImage(nib_to_sitk(datasets.load_mni152_gm_template(resolution=1)))
    wm = sitk.GetArrayFromImage(nib_to_sitk(datasets.load_mni152_wm_template(resolution=1)))
    brain = sitk.GetArrayFromImage(nib_to_sitk(datasets.load_mni152_brain_mask(resolution=1)))
    brain = brain > 0.5
    gm, wm = gm / gm.max(), wm / wm.max()
    tot = np.maximum(gm + wm, 1.0)
    gm, wm = gm / tot * brain, wm / tot * brain
    csf = np.clip(brain - gm - wm, 0, 1)

    p = pad_mm
    pad = ((p, p), (p, p), (p, p))
    brain_p = np.pad(brain, pad)
    dist = ndimage.distance_transform_edt(~brain_p)  # mm outside the brain (1 mm grid)
    hu = np.full(brain_p.shape, -1000.0, dtype=np.float32)
    u = np.clip((dist - 2.0) / 7.0, 0, 1)
    g = np.random.default_rng(7)
    texture = ndimage.gaussian_filter(g.standard_normal(brain_p.shape).astype(np.float32), 4.0)
    texture /= texture.std()
    skull = (1000.0 + 800.0 * np.abs(2 * u - 1) ** 0.7 + 60.0 * texture).clip(1000, 1800)
    hu[dist <= 14.0] = 35.0  # scalp
    sel = (dist > 2.0) & (dist <= 9.0)
    hu[sel] = skull[sel]
    hu[(dist > 0) & (dist <= 2.0)] = 8.0  # extra-axial CSF
    tissue = np.pad(40.0 * gm + 30.0 * wm + 8.0 * csf, pad)
    hu[brain_p] = tissue[brain_p]

    if mr_skull:
        t1_arr = np.pad(sitk.GetArrayFromImage(t1), pad)
        t1_arr[(dist > 0) & (dist <= 2.0)] = 0.08  # CSF rim
        t1_arr[(dist > 2.0) & (dist <= 9.0)] = np.where(np.abs(2 * u - 1) > 0.5, 0.05, 0.45)[
            (dist > 2.0) & (dist <= 9.0)
        ]  # dark tables, fatty diploe
        t1_arr[(dist > 9.0) & (dist <= 11.0)] = 0.35  # muscle / galea
        t1_arr[(dist > 11.0) & (dist <= 14.0)] = 0.85  # subcutaneous fat
        t1_arr += 0.01 * np.abs(g.standard_normal(t1_arr.shape)).astype(np.float32)
        t1_full = sitk.GetImageFromArray(t1_arr.astype(np.float32))
    hu_img = sitk.GetImageFromArray(hu)
    mask_img = sitk.GetImageFromArray(brain_p.astype(np.uint8))
    origin = np.asarray(t1.TransformIndexToPhysicalPoint((-p, -p, -p)))
    for im in (hu_img, mask_img) + ((t1_full,) if mr_skull else ()):
        im.SetSpacing(t1.GetSpacing())
        im.SetDirection(t1.GetDirection())
        im.SetOrigin(tuple(origin.tolist()))
    idx = np.argwhere(brain)[:, ::-1].mean(axis=0)
    centre = np.asarray(t1.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
    head = np.argwhere(dist <= 14.0)[:, ::-1]
    lo = np.asarray(hu_img.TransformIndexToPhysicalPoint(head.min(0).tolist()))
    hi = np.asarray(hu_img.TransformIndexToPhysicalPoint(head.max(0).tolist()))
    box = np.sort(np.stack([lo, hi]), axis=0)
    mr = t1_full if mr_skull else t1
    return {"t1": mr, "hu": hu_img, "brain": mask_img, "centre": centre, "head_box": box}


def make_ct(anat: dict, seed: int):
    """The fixed CT (0.5 x 0.5 x 5 mm thick slices, noisy) in the MR's frame (truth = identity),
    and the brain mask on its grid (boolean, sitk array order) for the TRE."""
    import numpy as np
    import SimpleITK as sitk

    g = np.random.default_rng([seed, 1])
    lo, hi = anat["head_box"][0] - 4.0, anat["head_box"][1] + 4.0
    lo = lo + g.uniform(0, 1, 3) * np.asarray(CT_SPACING)  # CT grid not aligned with the MR's
    size = [int(np.ceil((h - low) / s)) for low, h, s in zip(lo, hi, CT_SPACING, strict=True)]
    sub = sitk.Image(size[0], size[1], size[2] * SUBSLICES, sitk.sitkFloat32)
    sub.SetSpacing((CT_SPACING[0], CT_SPACING[1], CT_SPACING[2] / SUBSLICES))
    dz = CT_SPACING[2] / SUBSLICES
    sub.SetOrigin((lo[0], lo[1], lo[2] - (SUBSLICES - 1) / 2 * dz))
    hu = sitk.Resample(anat["hu"], sub, sitk.Transform(), sitk.sitkLinear, -1000.0)
    arr = sitk.GetArrayFromImage(hu).reshape(size[2], SUBSLICES, size[1], size[0]).mean(axis=1)
    arr += g.normal(0.0, 5.0, arr.shape).astype(np.float32)
    ct = sitk.GetImageFromArray(arr.astype(np.float32))
    ct.SetSpacing(CT_SPACING)
    ct.SetOrigin(tuple(float(v) for v in lo))
    brain = sitk.Resample(anat["brain"], ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return ct, sitk.GetArrayFromImage(brain) > 0


def misalign(mr, centre, seed: int, max_deg: float = 15.0, max_mm: float = 20.0):
    """Move the MR's header by a seeded rigid transform S (uniform +-max_deg about each axis
    through ``centre``, +-max_mm along each); return the moved MR, S (as Euler3D) and its angles."""
    import numpy as np
    import SimpleITK as sitk

    g = np.random.default_rng([seed, 2])
    ang = g.uniform(-max_deg, max_deg, 3)
    shift = g.uniform(-max_mm, max_mm, 3)
    s = sitk.Euler3DTransform(tuple(centre.tolist()), *np.deg2rad(ang), tuple(shift.tolist()))
    a = np.asarray(s.GetMatrix()).reshape(3, 3)
    moved = sitk.Image(mr)
    d = np.asarray(mr.GetDirection()).reshape(3, 3)
    moved.SetDirection(tuple((a @ d).ravel().tolist()))
    moved.SetOrigin(s.TransformPoint(mr.GetOrigin()))
    return moved, s, ang, shift


# --------------------------------------------------------------------------- runners


def run_voxflow(ct, mr, cfg):
    """(transform, wall s, CPU s) of voxflow's rigid registration."""
    from voxflow.register import register_rigid

    c0 = time.process_time()
    res = register_rigid(ct, mr, cfg, "ct", "mr")
    return res.transform, res.seconds, time.process_time() - c0


def run_ants(ct, mr, ants_python: str | None):
    """ANTs rigid on (CT + 1024, MR): (transform, wall s, CPU s), or None if unavailable."""
    import SimpleITK as sitk

    py = ants_python
    if py is None:
        try:
            import ants  # noqa: F401

            py = sys.executable
        except ImportError:
            return None
    with tempfile.TemporaryDirectory() as tmp:
        f, m, out = Path(tmp, "ct.nii.gz"), Path(tmp, "mr.nii.gz"), Path(tmp, "ants.mat")
        sitk.WriteImage(sitk.ShiftScale(ct, 1024.0, 1.0), str(f))
        sitk.WriteImage(mr, str(m))
        proc = subprocess.run(
            [py, __file__, "--ants-worker", str(f), str(m), str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "ANTS_RANDOM_SEED": "1"},
        )
        if proc.returncode:
            raise RuntimeError(f"ANTs worker failed:\n{proc.stderr[-2000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        return sitk.ReadTransform(str(out)), float(info["seconds"]), float(info["cpu"])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--starts", type=int, default=20, help="seeded misalignments in the sweep")
    ap.add_argument("--seed", type=int, default=0, help="base seed (CT noise, misalignments)")
    ap.add_argument("--quick", action="store_true", help="5 starts, ANTs on 1 pair")
    ap.add_argument("--ants-pairs", type=int, default=3, help="first N starts also run ANTs")
    ap.add_argument("--ants-sweep", action="store_true", help="run ANTs on every start")
    ap.add_argument("--ants-python", help="python with antspyx (default: this one, if it has it)")
    ap.add_argument("--mr-skull", action="store_true", help="MR with skull and scalp (T1-like)")
    ap.add_argument("--threads", type=int, help="voxflow threads (default: the library's)")
    ap.add_argument("--config", help="JSON of RegistrationConfig overrides")
    ap.add_argument("--ants-worker", nargs=3, metavar=("FIXED", "MOVING", "OUT"), help="internal")
    args = ap.parse_args(argv)
    if args.ants_worker:
        ants_worker(*args.ants_worker)
        return 0

    import numpy as np

    from voxflow.register import RegistrationConfig, target_registration_error

    starts = 5 if args.quick else args.starts
    n_ants = starts if args.ants_sweep else min(1 if args.quick else args.ants_pairs, starts)
    overrides = json.loads(args.config) if args.config else {}
    if args.threads is not None:
        overrides["threads"] = args.threads
    cfg = RegistrationConfig.from_dict(overrides)
    have_ants = args.ants_python is not None
    if not have_ants:
        try:
            import ants  # noqa: F401

            have_ants = True
        except ImportError:
            print(
                "ANTs not available: pip install antspyx (in a separate venv: it pins numpy<2.4"
                " and scipy<1.16) and pass --ants-python; running voxflow only"
            )
    if not have_ants:
        n_ants = 0

    t0 = time.perf_counter()
    anat = mni_anatomy(mr_skull=args.mr_skull)
    ct, brain = make_ct(anat, args.seed)
    print(
        f"pair built in {time.perf_counter() - t0:.1f} s: CT {ct.GetSize()} @ {CT_SPACING} mm, "
        f"MR {anat['t1'].GetSize()} @ 1 mm; {int(brain.sum())} brain voxels for the TRE; "
        f"{starts} starts (ANTs on {n_ants})"
    )
    print(f"MR: {'T1 with skull and scalp' if args.mr_skull else 'skull-stripped T1'}; {cfg}")
    head = f"{'start':>5} {'rot x/y/z deg':>18} {'shift x/y/z mm':>18} {'TRE mm':>7} {'wall s':>6}"
    print(
        head + f" {'cpu s':>6}" + (f" {'ANTs TRE':>8} {'wall s':>6} {'cpu s':>6}" if n_ants else "")
    )
    rows = []
    for i in range(starts):
        mr, truth, ang, shift = misalign(anat["t1"], anat["centre"], args.seed * 1000 + i)
        tx, sec, cpu = run_voxflow(ct, mr, cfg)
        tre = target_registration_error(tx, truth, ct, brain)
        row = {"tre": tre, "s": sec, "cpu": cpu}
        row.update(ants_tre=np.nan, ants_s=np.nan, ants_cpu=np.nan)
        line = (
            f"{i:>5} {'/'.join(f'{a:+.1f}' for a in ang):>18} "
            f"{'/'.join(f'{v:+.1f}' for v in shift):>18} {tre:>7.3f} {sec:>6.1f} {cpu:>6.1f}"
        )
        if i < n_ants:
            out = run_ants(ct, mr, args.ants_python)
            if out is not None:
                row["ants_tre"] = target_registration_error(out[0], truth, ct, brain)
                row["ants_s"], row["ants_cpu"] = out[1], out[2]
                line += f" {row['ants_tre']:>8.3f} {row['ants_s']:>6.1f} {row['ants_cpu']:>6.1f}"
        rows.append(row)
        print(line, flush=True)

    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    tre, sec = col["tre"], col["s"]
    fails = int(np.sum(tre > FAIL_TRE_MM))
    print(
        f"voxflow over {starts} starts: TRE mean {tre.mean():.3f} / median {np.median(tre):.3f} /"
        f" max {tre.max():.3f} mm; {sec.mean():.1f} s wall ({col['cpu'].mean():.1f} s CPU) mean;"
        f" failures (TRE > {FAIL_TRE_MM} mm): {fails}/{starts}"
    )
    ratio = cpu_ratio = np.nan
    paired = ~np.isnan(col["ants_s"])
    if paired.any():
        ratio = sec[paired].mean() / col["ants_s"][paired].mean()
        cpu_ratio = col["cpu"][paired].mean() / col["ants_cpu"][paired].mean()
        print(
            f"on the {int(paired.sum())} pair(s) run by both: voxflow TRE {tre[paired].mean():.3f}"
            f" mm in {sec[paired].mean():.1f} s ({col['cpu'][paired].mean():.1f} s CPU); "
            f"ANTs TRE {col['ants_tre'][paired].mean():.3f} mm in "
            f"{col['ants_s'][paired].mean():.1f} s ({col['ants_cpu'][paired].mean():.1f} s CPU);"
            f" voxflow/ANTs time ratio {ratio:.3f} wall, {cpu_ratio:.3f} CPU"
        )
    good_tre = bool(tre.mean() <= GOAL_TRE_MM)
    good_ratio = bool(ratio <= GOAL_RATIO) if not np.isnan(ratio) else None
    verdict = "MET" if good_tre and fails == 0 and good_ratio is not False else "NOT MET"
    timing = "not measured (no ANTs)" if good_ratio is None else good_ratio
    print(
        f"verdict: goal {verdict} (mean TRE {tre.mean():.3f} <= {GOAL_TRE_MM} mm: {good_tre}; "
        f"failures {fails} == 0: {fails == 0}; wall-time ratio {ratio:.3f} <= {GOAL_RATIO}: "
        f"{timing})"
    )
    return 0 if verdict == "MET" else 1


if __name__ == "__main__":
    sys.exit(main())
