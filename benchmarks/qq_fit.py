"""Benchmark: the voxelwise QQ fit (projected LM vs scipy TRF) and how well Y can be known at all.

    .venv/bin/python benchmarks/qq_fit.py [--voxels 2000] [--snr 100 200 400]

Simulates cortical-GM voxels with the wide spread of phantom-physics.md §A4 (S0 0.85 +- 3 %,
R2 12-15 1/s, Y 0.62 +- 0.036, v 0.03-0.05, chi_nb -0.01..0.02 ppm), 8 echoes at
TE = 4.5 + 5k ms with Rician noise at each SNR and QSM noise 5 ppb, then prints per method and
SNR: seconds per 1000 voxels, RMSE of Y and OEF (%), and the share of voxels whose Y ends on a
bound. For reference it also prints the Cramér-Rao bound of Y per voxel (all five parameters
free) and the posterior SD of Y given that spread: the best any per-voxel estimator (a fit or a
network that sees one voxel) can reach. Last, the same posterior SD for the qq phantom's
settings (``qq.phantom.tissue_spread`` x ``texture_scale``): where it is close to the prior SD
of Y, Y is learnable only by pooling many voxels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from voxflow.phantoms.qq import FIELD_SD as FIELD_SD_REL
from voxflow.phantoms.qq import TISSUE_RANGES, QQPhantomConfig
from voxflow.physics import qq_model
from voxflow.physics.qq_model import PARAMS

PRIOR_SD = np.array([0.0255, 0.87, 0.036, 0.0058, 0.0087])  # S0, R2, Y, v, chi_nb (spread)
# cortical GM in the phantom: SD of the per-subject tissue mean (uniform over the §A4 range,
# times tissue_spread) and of the smooth field (times texture_scale, relative to the midpoint
# except for chi_nb); Y: subject shift + texture SD
_GM = {p: TISSUE_RANGES["gm"].get(p, (0.0, 0.0)) for p in PARAMS}
RANGE_SD = np.array([hi - lo for lo, hi in _GM.values()]) / np.sqrt(12)
FIELD_SD = np.array(
    [FIELD_SD_REL.get(p, 0.0) * (1.0 if p == "chi_nb" else sum(_GM[p]) / 2) for p in PARAMS]
)
Y_SD = float(np.hypot(QQPhantomConfig().y_subject_sd, QQPhantomConfig().y_texture_sd))


def simulate(n: int, snr: float, g: np.random.Generator):
    p = np.stack(
        [
            0.85 * (1 + 0.03 * g.standard_normal(n)),
            g.uniform(12, 15, n),
            np.clip(0.62 + 0.036 * g.standard_normal(n), 0.4, 0.8),
            g.uniform(0.03, 0.05, n),
            g.uniform(-0.01, 0.02, n),
        ],
        1,
    )
    te = qq_model.echo_times(8)
    clean = qq_model.mgre_signal(*p.T, te)
    sigma = float(clean[:, 0].mean()) / snr
    noisy = np.abs(
        clean + sigma * (g.standard_normal(clean.shape) + 1j * g.standard_normal(clean.shape))
    )
    chi = qq_model.qsm_chi(p[:, 2], p[:, 3], p[:, 4]) + 0.005 * g.standard_normal(n)
    return p, noisy, chi, te, sigma


def phantom_prior_sd(tissue_spread: float, texture_scale: float) -> np.ndarray:
    """Per-voxel prior SD of (S0, R2, Y, v, chi_nb) in the phantom's cortical GM."""
    sd = np.hypot(RANGE_SD * tissue_spread, FIELD_SD * texture_scale)
    sd[2] = Y_SD
    return np.maximum(sd, 1e-9)


def information_bounds(snr: float, prior_sd: np.ndarray = PRIOR_SD) -> tuple[float, float]:
    """(CRB of Y with all parameters free, posterior SD of Y with the prior spread) at the mean."""
    p = np.array([[0.85, 13.5, 0.62, 0.04, 0.005]])
    te = qq_model.echo_times(8)
    sig, _, j_sig, j_chi = qq_model._model_and_jacobian(p, te)
    sigma = float(sig[0, 0]) / snr
    j = np.concatenate([j_sig[0] / sigma, j_chi[0][None] / 0.005], 0)
    fisher = j.T @ j
    crb = float(np.sqrt(np.linalg.pinv(fisher)[2, 2]))
    post = float(np.sqrt(np.linalg.inv(fisher + np.diag(prior_sd**-2))[2, 2]))
    return crb, post


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--voxels", type=int, default=2000)
    ap.add_argument("--snr", type=float, nargs="+", default=[100.0, 200.0, 400.0])
    ap.add_argument("--scipy-voxels", type=int, default=500, help="scipy TRF is slower")
    args = ap.parse_args()
    print("method  SNR     s/1000vox  Y_rmse  OEF_rmse(%)  Y_at_bound  | Y_CRB  Y_posterior_sd")
    for snr in args.snr:
        crb, post = information_bounds(snr)
        for method, n in (("lm", args.voxels), ("scipy", args.scipy_voxels)):
            g = np.random.default_rng(0)
            p, mag, chi, te, sigma = simulate(n, snr, g)
            t0 = time.perf_counter()
            res = qq_model.fit_voxels(
                mag, chi, te, sigma, 0.005, prior={"Y": 0.62, "v": 0.03}, method=method
            )
            dt = time.perf_counter() - t0
            y = res.params[:, 2]
            lo, hi = qq_model.FIT_BOUNDS["Y"]
            err = y - p[:, 2]
            oef = 100 * np.sqrt(np.mean((qq_model.oef(y) - qq_model.oef(p[:, 2])) ** 2))
            at_bound = np.mean((y <= lo + 1e-6) | (y >= hi - 1e-6))
            print(
                f"{method:6s} {snr:6.0f} {1000 * dt / n:10.3f} {np.sqrt(np.mean(err**2)):7.4f}"
                f" {oef:11.2f} {at_bound:11.1%}  | {crb:6.3f} {post:6.4f}"
            )
    print(
        f"prior SD of Y: {PRIOR_SD[2]:.3f} (OEF {100 * PRIOR_SD[2] / qq_model.CONSTANTS.y_a:.1f} %)"
    )
    print(f"\nposterior SD of Y per voxel by phantom regime (prior SD of Y {Y_SD:.3f}):")
    print("tissue_spread  texture_scale  " + "  ".join(f"SNR{s:<5.0f}" for s in args.snr))
    for spread, scale in ((1.0, 4.0), (0.0, 4.0), (0.0, 2.0), (0.0, 1.0)):
        prior = phantom_prior_sd(spread, scale)
        posts = [information_bounds(snr, prior)[1] for snr in args.snr]
        print(f"{spread:13.2f} {scale:14.2f}  " + "  ".join(f"{p:8.4f}" for p in posts))


if __name__ == "__main__":
    main()
