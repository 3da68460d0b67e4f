import numpy as np

from voxflow.seeding import derive_seed, rng


def test_derive_seed_is_stable_and_key_sensitive():
    assert derive_seed(42, "brain", "sub-001") == derive_seed(42, "brain", "sub-001")
    assert derive_seed(42, "brain", "sub-001") != derive_seed(42, "brain", "sub-002")
    assert derive_seed(42, "x") != derive_seed(43, "x")
    # fixed value: must not depend on Python's per-process hash salt
    assert derive_seed(0, "a") == 4012190959


def test_rng_reproducible_per_key():
    assert np.array_equal(rng(1, "k").normal(size=4), rng(1, "k").normal(size=4))
    assert not np.array_equal(rng(1, "k").normal(size=4), rng(1, "j").normal(size=4))
