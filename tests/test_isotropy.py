"""Anisotropy: the flag, the affine invariance of RSA, and All-but-the-Top isotropisation."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.descriptors import anisotropy, centre, cosine_matrix, upper
from analysis.isotropy import (affine, all_but_the_top, flag_text, invariance_gap, is_flagged, isotropised_rdm,
                               linear_normalise)
from analysis.rsa import correlate


def test_flag_rule():
    assert is_flagged(0.997) and is_flagged(0.9501)
    assert not is_flagged(0.95) and not is_flagged(0.49) and not is_flagged(None) and not is_flagged(float("nan"))
    assert flag_text(0.982).startswith("UNRELIABLE") and flag_text(0.6) == "ok" and flag_text(None) == "unknown"


def test_rsa_invariant_under_random_positive_affine_maps():
    """Property test (Section 4.1.2): per-RDM x -> a x + b with a > 0 never changes Spearman or Pearson."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(5, 22))
        x = rng.normal(size=(n, 16))
        y = x + rng.uniform(0.1, 2.0) * rng.normal(size=(n, 16))
        m1, m2 = cosine_matrix(x), cosine_matrix(y)
        a1, a2 = np.exp(rng.uniform(-5, 5, size=2))
        b1, b2 = rng.uniform(-10, 10, size=2)
        t1, t2 = affine(m1, a1, b1), affine(m2, a2, b2)
        for method in ("spearman", "pearson"):
            raw = correlate(upper(m1), upper(m2), method)
            mapped = correlate(upper(t1), upper(t2), method)
            assert mapped == pytest.approx(raw, abs=1e-9), (trial, method)
    # a negative scale is not order-preserving: the test above would catch a broken invariance
    assert correlate(upper(affine(m1, -1.0, 0.0)), upper(m2)) == pytest.approx(-correlate(upper(m1), upper(m2)))


def test_paper_linear_normalisation_is_a_no_op():
    rng = np.random.default_rng(1)
    m1, m2 = cosine_matrix(rng.normal(size=(21, 30))), cosine_matrix(rng.normal(size=(21, 30)) + 0.3)
    g = invariance_gap(m1, m2, 0.997, 0.49)
    assert g["spearman"]["abs_diff"] < 1e-12 and g["pearson"]["abs_diff"] < 1e-12
    assert not np.allclose(linear_normalise(m1, 0.997), m1)  # the entries do change; the correlation does not


def _anisotropic(seed: int, n: int = 20, d: int = 64):
    rng = np.random.default_rng(seed)
    common = 30.0 * rng.normal(size=d)
    rogue = rng.normal(size=(2, d))
    coef = rng.normal(size=(n, 2)) * [6.0, 4.0]
    return common + coef @ rogue + rng.normal(size=(n, d)), common, rogue


def test_isotropisation_lowers_anisotropy():
    acts, _, _ = _anisotropic(0)
    before = anisotropy(acts)
    after = anisotropy(all_but_the_top(acts, d=2))
    assert before > 0.9
    assert after < 0.1
    assert anisotropy(all_but_the_top(acts, d=0)) < before  # mean removal alone already helps
    with pytest.raises(ValueError):
        all_but_the_top(acts, d=50)


def test_isotropised_rdm_removes_a_rogue_direction():
    """Emotion vectors contaminated along the neutral set's dominant directions: ABTT recovers the clean RDM."""
    rng = np.random.default_rng(2)
    neutral, common, rogue = _anisotropic(3)
    clean = rng.normal(size=(21, 64))
    clean -= (clean @ np.linalg.pinv(rogue)) @ rogue  # structure orthogonal to the rogue directions
    contaminated = common + clean + rng.normal(size=(21, 2)) @ (2.0 * rogue)
    truth = cosine_matrix(centre(clean))
    raw = cosine_matrix(centre(contaminated))
    iso = isotropised_rdm(contaminated, neutral, d=2)
    r_raw = correlate(upper(raw), upper(truth))
    r_iso = correlate(upper(iso), upper(truth))
    assert r_raw < 0.5
    assert r_iso > 0.9
    # uncentred or centred input gives the same isotropised RDM (the centring absorbs the neutral mean)
    np.testing.assert_allclose(iso, isotropised_rdm(centre(contaminated), neutral, d=2), atol=1e-10)
