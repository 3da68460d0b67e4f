import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import j0

from voxflow.errors import VoxflowError
from voxflow.physics import qq_model as qq


def fs_integral(x: float) -> float:
    """The defining integral of fs, by adaptive quadrature."""

    def integrand(u: float) -> float:
        return (2 + u) * np.sqrt(1 - u) * (1 - j0(1.5 * x * u)) / u**2

    return quad(integrand, 0, 1, limit=400, epsabs=1e-12)[0] / 3


def test_fs_matches_the_integral_from_0_1_to_20():
    xs = np.linspace(0.1, 20, 80)  # crosses the series/quadrature switch at 12
    ref = np.array([fs_integral(x) for x in xs])
    np.testing.assert_allclose(qq.fs(xs), ref, atol=1e-6, rtol=0)


def test_fs_reference_values():
    np.testing.assert_allclose(
        qq.fs(np.array([1.0, 2.0, 5.0, 10.0])), [0.28962, 1.04836, 4.04091, 9.01482], atol=1e-5
    )


def test_fs_limits():
    small = np.array([1e-3, 1e-2, 0.05])
    np.testing.assert_allclose(qq.fs(small) / (0.3 * small**2), 1.0, rtol=1e-3)
    assert qq.fs(0.0) == 0.0
    big = np.array([30.0, 60.0])
    np.testing.assert_allclose(qq.fs(big), big - 1, atol=0.01)
    assert qq.fs(-3.0) == qq.fs(3.0)  # even in x


def test_worked_example_grey_matter():
    """phantom-physics.md §A4 check: GM, Y = 0.60, v = 0.035, chi_nb = 0."""
    assert qq.delta_omega(0.60, 0.0) == pytest.approx(100.6, abs=0.1)
    assert qq.oef(0.60) == pytest.approx(0.388, abs=5e-4)
    assert qq.qsm_chi(0.60, 0.035, 0.0) * 1000 == pytest.approx(11.0, abs=0.5)  # ppb
    signal = qq.mgre_signal(1.0, 14.0, 0.60, 0.035, 0.0, qq.echo_times(8))
    expected = [0.937, 0.867, 0.800, 0.735, 0.674, 0.617, 0.565, 0.517]
    np.testing.assert_allclose(signal, expected, atol=1e-3)


def test_vectorised_shapes_and_constants():
    te = qq.echo_times(8)
    np.testing.assert_allclose(te[[0, -1]], [4.5e-3, 39.5e-3])
    shape = (4, 5, 3)
    rng = np.random.default_rng(0)
    p = [rng.uniform(lo, hi, shape) for lo, hi in [(0.8, 1.2), (10, 20), (0.5, 0.7)]]
    s = qq.mgre_signal(*p, 0.03, 0.0, te)
    assert s.shape == shape + (8,)
    assert np.all(np.diff(s, axis=-1) < 0)  # magnitude decays
    c = qq.CONSTANTS
    assert c.hct * c.dchi0 == pytest.approx(1.211, abs=1e-3)  # consistency check of §A2
    assert c.psi_hb * c.dchi_hb == pytest.approx(1.138, abs=1e-3)


def _simulate(n: int, seed: int, snr: float, sigma_chi: float):
    rng = np.random.default_rng(seed)
    truth = np.stack(
        [
            rng.uniform(0.8, 1.2, n),
            rng.uniform(12, 20, n),
            rng.uniform(0.5, 0.75, n),
            rng.uniform(0.02, 0.05, n),
            rng.uniform(-0.03, 0.05, n),
        ],
        1,
    )
    te = qq.echo_times(8)
    mag = qq.mgre_signal(*truth.T, te)
    sigma = mag[:, 0] / snr
    noise = rng.standard_normal(mag.shape) + 1j * rng.standard_normal(mag.shape)
    noisy = np.abs(mag + sigma[:, None] * noise)  # Rician magnitude
    chi = qq.qsm_chi(truth[:, 2], truth[:, 3], truth[:, 4]) + sigma_chi * rng.standard_normal(n)
    return truth, noisy, chi, te, sigma


@pytest.mark.parametrize("method", ["lm", "scipy"])
def test_fit_round_trip_recovers_parameters_at_high_snr(method):
    truth, mag, chi, te, sigma = _simulate(60, seed=1, snr=5000, sigma_chi=1e-4)
    fit = qq.fit_voxels(mag, chi, te, sigma, 1e-4, method=method, chunk=20)
    err = np.abs(fit.params - truth)
    assert np.median(err[:, 0] / truth[:, 0]) < 0.01  # S0
    assert np.median(err[:, 1]) < 0.5  # R2, 1/s
    assert np.median(err[:, 2]) < 0.02  # Y
    assert np.median(err[:, 3]) < 0.003  # v
    assert np.median(err[:, 4]) < 0.005  # chi_nb, ppm
    assert fit.params.shape == (60, 5) and fit.seconds > 0


def test_fit_rejects_bad_input():
    te = qq.echo_times(8)
    with pytest.raises(VoxflowError, match="8 echoes"):
        qq.fit_voxels(np.ones((3, 7)), np.zeros(3), te, 0.01, 0.01)
    bad = np.ones((3, 8))
    bad[1, 2] = np.nan
    with pytest.raises(VoxflowError, match="NaN"):
        qq.fit_voxels(bad, np.zeros(3), te, 0.01, 0.01)


def test_analytic_jacobian_matches_finite_differences():
    p = np.array([[1.1, 14.0, 0.6, 0.035, 0.01], [0.9, 20.0, 0.45, 0.02, -0.02]])
    te = qq.echo_times(8)
    _, _, j_sig, j_chi = qq._model_and_jacobian(p, te)
    for k in range(5):
        h = np.zeros(5)
        h[k] = 1e-6 * max(abs(p[0, k]), 1e-3)
        d_sig = (qq.mgre_signal(*(p + h).T, te) - qq.mgre_signal(*(p - h).T, te)) / (2 * h[k])
        pp, pm = p + h, p - h
        d_chi = (qq.qsm_chi(*pp[:, 2:].T) - qq.qsm_chi(*pm[:, 2:].T)) / (2 * h[k])
        np.testing.assert_allclose(j_sig[..., k], d_sig, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(j_chi[:, k], d_chi, rtol=1e-4, atol=1e-7)
