"""Inference: Mantel permutation test, bootstrap CI, split-half reliability, size correlations."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.descriptors import cosine_matrix
from analysis.rsa import RDM
from analysis.stats import (PAPER_SIZE_TESTS, bootstrap_ci, mantel, size_correlations, spearman_brown,
                            split_half)


def _vectors(seed: int, n: int = 21, d: int = 40) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x - x.mean(0)


def test_mantel_detects_a_noisy_copy():
    v = _vectors(0)
    noisy = v + 0.7 * np.random.default_rng(1).normal(size=v.shape)
    r = mantel(cosine_matrix(v), cosine_matrix(noisy), n_perm=5000, seed=0)
    assert r.statistic > 0.4
    assert r.p < 0.01
    assert r.p >= 1 / 5001
    self_test = mantel(cosine_matrix(v), cosine_matrix(v), n_perm=2000, seed=0)
    assert self_test.statistic == pytest.approx(1.0)
    assert self_test.p == pytest.approx(1 / 2001)  # nothing in the null reaches 1


def test_mantel_independent_rdms_not_significant():
    ps = [mantel(cosine_matrix(_vectors(10 + k)), cosine_matrix(_vectors(50 + k)), n_perm=2000, seed=k).p
          for k in range(3)]
    assert all(p > 0.05 for p in ps), ps
    r = mantel(cosine_matrix(_vectors(10)), cosine_matrix(_vectors(50)), n_perm=2000, seed=0)
    assert abs(r.null_mean) < 0.02  # the permutation null is centred on zero


def test_mantel_seeded_and_label_aligned():
    v = _vectors(3)
    labels = [f"e{k}" for k in range(21)]
    perm = np.random.default_rng(4).permutation(21)
    a = RDM(cosine_matrix(v), labels, "a")
    b = RDM(cosine_matrix(v[perm] + 0.5 * _vectors(5)[perm]), [labels[k] for k in perm], "b")
    r1, r2 = mantel(a, b, n_perm=1000, seed=7), mantel(a, b, n_perm=1000, seed=7)
    assert r1 == r2
    assert r1.p < 0.01  # alignment by name finds the shared structure despite the shuffled order


def test_bootstrap_ci_brackets_estimate():
    v = _vectors(0)
    a, b = cosine_matrix(v), cosine_matrix(v + 0.8 * _vectors(1))
    ci = bootstrap_ci(a, b, n_boot=400, seed=0)
    assert ci.lo < ci.estimate < ci.hi
    assert ci.lo > 0.1  # clearly related RDMs
    assert ci.n_valid == 400
    assert bootstrap_ci(a, b, n_boot=400, seed=0) == ci
    ind = bootstrap_ci(cosine_matrix(_vectors(2)), cosine_matrix(_vectors(3)), n_boot=400, seed=0)
    assert ind.lo < 0 < ind.hi


def _passages(seed: int, signal: float, per: int = 8, n: int = 21, d: int = 32):
    rng = np.random.default_rng(seed)
    proto = rng.normal(size=(n, d))
    acts, labels = [], []
    for k in range(n):
        for _ in range(per):
            acts.append(signal * proto[k] + rng.normal(size=d) + 5.0)  # + a common offset, as in a residual stream
            labels.append(f"e{k}")
    return np.asarray(acts), labels


def test_split_half_reliable_vs_noise():
    acts, labels = _passages(0, signal=1.5)
    good = split_half(acts, labels, n_splits=30, seed=0)
    assert good.reliability > 0.8 and not good.too_noisy
    assert good.reliability > good.raw_mean  # Spearman-Brown raises a positive half-length correlation
    acts, labels = _passages(1, signal=0.0)
    bad = split_half(acts, labels, n_splits=30, seed=0)
    assert bad.reliability < 0.5 and bad.too_noisy
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(-0.2) == -0.2 and spearman_brown(-1.0) == -1.0
    with pytest.raises(ValueError, match="2 passages"):
        split_half(acts[:17], labels[:17])  # e0 x8, e1 x8, e2 x1


def _table_a1():
    ref = pytest.importorskip("analysis.reference")
    try:
        return ref.table_a1(), ref.size_table()
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"reference data unavailable: {exc}")


def test_size_table_reproduces_paper_from_table_a1():
    rows, paper = _table_a1()
    assert len(rows) == 12
    got = {(r["predictor"], r["outcome"]): r for r in size_correlations(rows, PAPER_SIZE_TESTS)}
    expected = {("d_model", "anisotropy"): (-0.882, 1.5e-4), ("size_b", "anisotropy"): (-0.820, 0.0011),
                ("size_b", "rdm_std"): (-0.891, 1.0e-4), ("size_b", "best_layer_pct"): (-0.484, 0.11)}
    for key, (rho, p) in expected.items():
        r = got[key]
        assert r["n"] == 12
        assert round(r["rho"], 3) == rho, key
        assert float(f"{r['p']:.2g}") == p, (key, r["p"])
    # Bonferroni over the four tests (alpha 0.0125 each): the three maturity rows survive, best-layer % does not
    assert [got[k]["significant_bonferroni"] for k in expected] == [True, True, True, False]
    assert got[("size_b", "best_layer_pct")]["p_bonferroni"] == pytest.approx(min(1.0, 4 * got[("size_b",
                                                                                             "best_layer_pct")]["p"]))
    for p in paper:  # and against the reference module's signed paper values
        assert round(got[(p["predictor"], p["outcome"])]["rho"], 3) == pytest.approx(p["rho"], abs=1e-9)


def test_size_correlations_tolerates_missing_values():
    rows = [{"size_b": s, "d_model": d, "anisotropy": a, "rdm_std": None, "best_layer_pct": 40.0}
            for s, d, a in ((1, 100, .9), (2, 200, .8), (3, 300, .7), (4, 400, .6))]
    out = {(r["predictor"], r["outcome"]): r for r in size_correlations(rows)}
    assert out[("size_b", "anisotropy")]["rho"] == pytest.approx(-1.0)
    assert out[("size_b", "rdm_std")]["n"] == 0 and np.isnan(out[("size_b", "rdm_std")]["rho"])
    assert np.isnan(out[("size_b", "best_layer_pct")]["rho"])  # constant outcome
