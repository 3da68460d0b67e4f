"""QSM + qBOLD ("QQ") forward model and its voxelwise nonlinear least-squares fit.

mGRE magnitude (Yablonskiy & Haacke 1994 static dephasing; Cho et al. MRM 2018,
doi:10.1002/mrm.27135)::

    S(t)  = S0 * exp(-R2 * t) * exp(-v * fs(dw * t))
    dw    = (1/3) * gamma * B0 * [Hct * dchi0 * (1 - Y) + chi_ba - chi_nb]
    fs(x) = (1/3) int_0^1 (2 + u) sqrt(1 - u) (1 - J0(1.5 x u)) / u^2 du
          = 1F2(-1/2; 3/4, 5/4; -9 x^2 / 16) - 1

QSM (QQ susceptibility model)::

    chi = [chi_ba / alpha + psi_Hb * dchi_Hb * (-Y + (1 - (1 - alpha) * Ya) / alpha)] * v
          + (1 - v / alpha) * chi_nb
    OEF = 1 - Y / Ya

Units: times in s, R2 in 1/s, susceptibilities in ppm (SI), S0 in the images' units.
Constants and their sources: ../shared/specs/phantom-physics.md §A2 (``QQConstants``).
Everything is vectorised over voxels: parameters broadcast against each other, echo times
run along a new last axis.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.lazy import lazy_import

special = lazy_import("scipy.special")  # voxflow.lazy: not at Snakemake's DAG build

PARAMS = ("S0", "R2", "Y", "v", "chi_nb")


@dataclass(frozen=True)
class QQConstants:
    """Physical constants of the QQ model (phantom-physics.md §A2, with its sources)."""

    gamma: float = 2 * math.pi * 42.577e6  # rad s^-1 T^-1, 1H gyromagnetic ratio
    b0: float = 3.0  # T
    hct: float = 0.357  # haematocrit (Cho 2018)
    dchi0: float = 4 * math.pi * 0.27  # ppm SI, fully deoxy - oxy RBC (Spees 2001: 0.27 cgs)
    chi_ba: float = -0.1083  # ppm, fully oxygenated blood vs water (Cho 2018)
    alpha: float = 0.77  # venous / total blood volume (Cho 2018)
    psi_hb: float = 0.0909  # haemoglobin volume fraction of blood (Cho 2018)
    dchi_hb: float = 12.522  # ppm SI, deoxy - oxy haemoglobin (Cho 2018)
    y_a: float = 0.98  # arterial oxygenation (Cho 2018; mcQQ preprint)


CONSTANTS = QQConstants()

# 1F2 power series is used up to this |x|; beyond it the integral by Gauss-Legendre.
_SERIES_MAX_X = 12.0
_SERIES_TERMS = 60
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(256)


def _fs_series(x: np.ndarray) -> np.ndarray:
    """1F2(-1/2; 3/4, 5/4; -9x^2/16) - 1 by its power series (|x| <= 12: < 1e-8 abs. error)."""
    z = -9.0 * x * x / 16.0
    term = np.ones_like(x)
    total = np.zeros_like(x)  # the k = 0 term (1) cancels the "- 1"
    a, b1, b2 = -0.5, 0.75, 1.25
    for k in range(_SERIES_TERMS):
        term = term * ((a + k) / ((b1 + k) * (b2 + k) * (k + 1))) * z
        total = total + term
    return total


def _fs_quadrature(x: np.ndarray) -> np.ndarray:
    """The defining integral by 256-point Gauss-Legendre in s, u = 1 - s^2 (smooth integrand)."""
    s = 0.5 * (_GL_NODES + 1.0)
    w = 0.5 * _GL_WEIGHTS
    u = 1.0 - s * s
    g = (2.0 + u) * s * 2.0 * s / (3.0 * u * u)  # (1/3)(2+u) sqrt(1-u) / u^2 * du/ds
    out = np.empty_like(x)
    for i0 in range(0, x.size, 4096):  # chunked: (chunk, 256) J0 evaluations
        xi = x.reshape(-1)[i0 : i0 + 4096, None]
        out.reshape(-1)[i0 : i0 + 4096] = ((1.0 - special.j0(1.5 * xi * u)) * g * w).sum(-1)
    return out


def fs(x: np.ndarray | float) -> np.ndarray:
    """Yablonskiy-Haacke static-dephasing function fs(x), x = dw * t (even in x).

    Limits: fs ~ 0.3 x^2 for x << 1.5, fs ~ x - 1 for x >> 1.5.
    """
    x = np.abs(np.asarray(x, dtype=np.float64))
    out = np.empty_like(x)
    small = x <= _SERIES_MAX_X
    out[small] = _fs_series(x[small])
    if not small.all():
        out[~small] = _fs_quadrature(x[~small])
    return out


def delta_omega(Y, chi_nb, c: QQConstants = CONSTANTS) -> np.ndarray:
    """Characteristic frequency dw (rad/s) of the deoxygenated venous blood."""
    Y, chi_nb = np.asarray(Y, float), np.asarray(chi_nb, float)
    dchi_ppm = c.hct * c.dchi0 * (1.0 - Y) + c.chi_ba - chi_nb
    return c.gamma * c.b0 * dchi_ppm * 1e-6 / 3.0


def mgre_signal(S0, R2, Y, v, chi_nb, te, c: QQConstants = CONSTANTS) -> np.ndarray:
    """mGRE magnitude at echo times ``te`` (s): shape broadcast(params) + (len(te),)."""
    te = np.asarray(te, dtype=np.float64)
    S0, R2, v = (np.asarray(p, float)[..., None] for p in (S0, R2, v))
    dw = delta_omega(Y, chi_nb, c)[..., None]
    return S0 * np.exp(-R2 * te - v * fs(dw * te))


def qsm_chi(Y, v, chi_nb, c: QQConstants = CONSTANTS) -> np.ndarray:
    """Voxel susceptibility (ppm) of the QQ model."""
    Y, v, chi_nb = (np.asarray(p, float) for p in (Y, v, chi_nb))
    blood = c.chi_ba / c.alpha + c.psi_hb * c.dchi_hb * (-Y + (1 - (1 - c.alpha) * c.y_a) / c.alpha)
    return blood * v + (1.0 - v / c.alpha) * chi_nb


def oef(Y, c: QQConstants = CONSTANTS) -> np.ndarray:
    """Oxygen extraction fraction 1 - Y / Ya."""
    return 1.0 - np.asarray(Y, float) / c.y_a


def echo_times(n: int, first_s: float = 4.5e-3, spacing_s: float = 5e-3) -> np.ndarray:
    """The protocol's echo times: TE_k = first + k * spacing (s)."""
    return first_s + spacing_s * np.arange(n)


# ----------------------------------------------------------------------------------------------
# voxelwise fit

# Default bounds of the fit (S0 relative to the first echo's magnitude).
FIT_BOUNDS = {
    "S0": (0.5, 2.0),
    "R2": (0.0, 60.0),
    "Y": (0.0, 0.98),
    "v": (0.001, 0.15),
    "chi_nb": (-0.5, 0.5),
}


@dataclass
class FitResult:
    """Voxelwise parameter estimates (N, 5) in ``PARAMS`` order, plus cost and timing."""

    params: np.ndarray
    cost: np.ndarray
    seconds: float
    converged: np.ndarray


def _initial_guess(mag: np.ndarray, chi: np.ndarray, te: np.ndarray, prior: dict) -> np.ndarray:
    """Per voxel: S0 and R2* from a log-linear fit of the decay; Y, v from the prior; chi_nb
    from the QSM value minus the prior's blood term; R2 = R2* - v * dw (static regime)."""
    logm = np.log(np.clip(mag, 1e-6, None))
    A = np.stack([np.ones_like(te), -te], 1)
    coef, *_ = np.linalg.lstsq(A, logm.T, rcond=None)
    s0 = np.exp(coef[0])
    r2s = coef[1]
    y0 = np.full(len(mag), prior["Y"])
    v0 = np.full(len(mag), prior["v"])
    chi_nb0 = (chi - qsm_chi(y0, v0, 0.0)) / (1 - v0 / CONSTANTS.alpha)
    r2 = r2s - v0 * delta_omega(y0, chi_nb0)
    return np.stack([s0, r2, y0, v0, chi_nb0], 1)


def fs_prime(x: np.ndarray) -> np.ndarray:
    """d fs / dx by a central difference (fs is smooth; step 1e-5)."""
    h = 1e-5
    return (fs(x + h) - fs(x - h)) / (2 * h)


def _model_and_jacobian(
    p: np.ndarray, te: np.ndarray, c: QQConstants = CONSTANTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signal (N, E), QSM (N,) and their analytic derivatives (N, E, 5) and (N, 5)."""
    s0, r2, y, v, chi_nb = p.T
    dw = delta_omega(y, chi_nb, c)[:, None]
    x = dw * te
    f = fs(x)
    sig = s0[:, None] * np.exp(-r2[:, None] * te - v[:, None] * f)
    k = c.gamma * c.b0 * 1e-6 / 3.0  # d(dw)/d(chi) per ppm
    dfx = fs_prime(x) * te * v[:, None] * sig  # -dS/d(dw)
    j_sig = np.stack(
        [
            sig / s0[:, None],
            -te * sig,
            dfx * k * c.hct * c.dchi0,  # dS/dY = -dS/d(dw) * d(dw)/dY, d(dw)/dY = -k Hct dchi0
            -f * sig,
            dfx * k,  # d(dw)/d(chi_nb) = -k
        ],
        -1,
    )
    chi = qsm_chi(y, v, chi_nb, c)
    blood = c.chi_ba / c.alpha + c.psi_hb * c.dchi_hb * (-y + (1 - (1 - c.alpha) * c.y_a) / c.alpha)
    zero = np.zeros_like(y)
    j_chi = np.stack(
        [zero, zero, -c.psi_hb * c.dchi_hb * v, blood - chi_nb / c.alpha, 1 - v / c.alpha], -1
    )
    return sig, chi, j_sig, j_chi


def fit_voxels(
    mag: np.ndarray,
    chi: np.ndarray,
    te: np.ndarray,
    sigma_mag: float | np.ndarray,
    sigma_chi: float,
    prior: dict | None = None,
    bounds: dict | None = None,
    method: str = "lm",
    max_iter: int = 100,
    chunk: int = 500,
) -> FitResult:
    """Weighted nonlinear least squares of the QQ model, independently per voxel.

    ``mag`` (N, E) magnitudes, ``chi`` (N,) QSM in ppm; residuals are weighted by
    ``1/sigma_mag`` and ``1/sigma_chi``. Initial values: S0 and R2* from a log-linear fit, Y and
    v from ``prior``, chi_nb from the QSM value. ``method``:

    * ``lm`` (default): Levenberg-Marquardt vectorised over all voxels (analytic Jacobian,
      batched 5x5 solves, steps projected into ``bounds``, per-voxel damping and acceptance);
    * ``scipy``: ``scipy.optimize.least_squares`` (TRF, bounds) on ``chunk`` voxels at a time
      as one sparse problem with a block-diagonal Jacobian; slower, the cross-check.
    """
    mag = np.asarray(mag, np.float64)
    chi = np.asarray(chi, np.float64)
    te = np.asarray(te, np.float64)
    if mag.ndim != 2 or mag.shape[1] != te.size or chi.shape != (mag.shape[0],):
        raise VoxflowError(
            f"fit_voxels: magnitudes {mag.shape} / QSM {chi.shape} do not match {te.size} echoes"
        )
    if not (np.isfinite(mag).all() and np.isfinite(chi).all()):
        raise VoxflowError("fit_voxels: the data hold NaN/inf values; mask them out first")
    if method not in ("lm", "scipy"):
        raise VoxflowError(f"fit_voxels: method '{method}' not one of lm, scipy")
    prior = {"Y": 0.6, "v": 0.03, **(prior or {})}
    b = {**FIT_BOUNDS, **(bounds or {})}
    n = mag.shape[0]
    scale = np.clip(mag[:, 0], 1e-6, None)  # S0 is fitted relative to the first echo
    w_mag = scale / np.broadcast_to(np.asarray(sigma_mag, float), (n,))
    lo = np.array([b[p][0] for p in PARAMS])
    hi = np.array([b[p][1] for p in PARAMS])
    y_mag = mag / scale[:, None]
    x0 = _initial_guess(y_mag, chi, te, prior)
    x0 = np.clip(x0, lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))
    t0 = time.perf_counter()
    fit = _fit_lm if method == "lm" else _fit_scipy
    p, cost, ok = fit(x0, y_mag, chi, te, w_mag, 1.0 / sigma_chi, lo, hi, max_iter, chunk)
    p[:, 0] *= scale
    return FitResult(p, cost, time.perf_counter() - t0, ok)


def _residuals(p, y_mag, chi, te, w_mag, w_chi, jac: bool = False):
    if jac:
        sig, q, j_sig, j_chi = _model_and_jacobian(p, te)
    else:
        sig = mgre_signal(*p.T, te)
        q = qsm_chi(p[:, 2], p[:, 3], p[:, 4])
    r = np.concatenate([(sig - y_mag) * w_mag[:, None], ((q - chi) * w_chi)[:, None]], 1)
    if not jac:
        return r
    j = np.concatenate([j_sig * w_mag[:, None, None], (j_chi * w_chi)[:, None, :]], 1)
    return r, j


def _fit_lm(x0, y_mag, chi, te, w_mag, w_chi, lo, hi, max_iter, chunk):
    """Projected Levenberg-Marquardt, every voxel its own damping and stopping."""
    p = x0.copy()
    r, j = _residuals(p, y_mag, chi, te, w_mag, w_chi, jac=True)
    cost = 0.5 * (r * r).sum(1)
    lam = np.full(len(p), 1e-2)
    active = np.ones(len(p), bool)
    eye = np.eye(5)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ja, ra = j[idx], r[idx]
        jtj = np.einsum("nek,nel->nkl", ja, ja)
        g = np.einsum("nek,ne->nk", ja, ra)
        diag = np.einsum("nkk->nk", jtj)
        a = jtj + lam[idx, None, None] * (eye * np.maximum(diag, 1e-12)[:, None, :])
        step = np.linalg.solve(a, -g[..., None])[..., 0]
        trial = np.clip(p[idx] + step, lo, hi)
        rt, jt = _residuals(trial, y_mag[idx], chi[idx], te, w_mag[idx], w_chi, jac=True)
        ct = 0.5 * (rt * rt).sum(1)
        better = ct < cost[idx]
        acc = idx[better]
        gain = (cost[acc] - ct[better]) / np.maximum(cost[acc], 1e-30)
        p[acc], r[acc], j[acc], cost[acc] = trial[better], rt[better], jt[better], ct[better]
        lam[acc] = np.maximum(lam[acc] / 3, 1e-7)
        rej = idx[~better]
        lam[rej] = lam[rej] * 4
        done = np.zeros(len(p), bool)
        done[acc[gain < 1e-9]] = True
        done[rej[lam[rej] > 1e8]] = True
        active &= ~done
    return p, cost, ~active


def _fit_scipy(x0, y_mag, chi, te, w_mag, w_chi, lo, hi, max_iter, chunk):
    from scipy.optimize import least_squares
    from scipy.sparse import block_diag, csr_matrix

    n, e = y_mag.shape
    out, cost, ok = np.empty((n, 5)), np.empty(n), np.empty(n, bool)
    for i0 in range(0, n, chunk):
        sl = slice(i0, min(i0 + chunk, n))
        m = sl.stop - sl.start
        args = (y_mag[sl], chi[sl], te, w_mag[sl], w_chi)

        def resid(flat, args=args, m=m):
            return _residuals(flat.reshape(m, 5), *args).ravel()

        res = least_squares(
            resid,
            x0[sl].ravel(),
            bounds=(np.tile(lo, m), np.tile(hi, m)),
            jac_sparsity=block_diag([csr_matrix(np.ones((e + 1, 5)))] * m, format="csr"),
            method="trf",
            tr_solver="lsmr",
            x_scale="jac",
            max_nfev=max_iter,
        )
        out[sl] = res.x.reshape(m, 5)
        r = res.fun.reshape(m, e + 1)
        cost[sl] = 0.5 * (r * r).sum(1)
        ok[sl] = res.status > 0
    return out, cost, ok
