"""Inference for RSA and the size correlations of Section 3.5.

- ``mantel``: permutation test of an RDM correlation. The emotion labels of the second RDM are permuted
  (rows and columns together), the upper-triangle Spearman (or Pearson) is recomputed, and
  p = (1 + #{null >= observed}) / (1 + n_perm) (one-sided: "more similar than chance").
- ``bootstrap_ci``: percentile CI of the RSA, resampling emotions with replacement; cells that pair an
  emotion with its own duplicate (the diagonal 1 copied off the diagonal) are dropped.
- ``split_half``: split-half reliability of one model's RDM over passages, Spearman-Brown corrected: the
  noise ceiling of any comparison with that model, flagged when below ``threshold``.
- ``size_correlations``: Spearman rho and p of size / d_model against the descriptors, Bonferroni-adjusted
  over the tests of the table (``statsmodels.stats.multitest.multipletests``).

All random draws come from ``numpy.random.default_rng(seed)``; the same seed gives the same numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

from .descriptors import as_array, centre, cosine_matrix, upper
from .rsa import RDM, align, correlate

DEFAULT_PERMUTATIONS = 10_000
DEFAULT_BOOTSTRAP = 2_000
NOISE_CEILING_THRESHOLD = 0.5


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, RDM) and isinstance(b, RDM):
        ma, mb, _ = align(a, b)
        return ma, mb
    ma, mb = as_array(a), as_array(b)
    if ma.shape != mb.shape or ma.ndim != 2 or ma.shape[0] != ma.shape[1]:
        raise ValueError(f"unlabelled matrices must be square and of equal shape, got {ma.shape} and {mb.shape}")
    return ma, mb


def _zscore(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


# ---- Mantel permutation test -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MantelResult:
    statistic: float
    p: float
    n_perm: int
    method: str
    null_mean: float
    null_sd: float
    n_emotions: int

    def as_dict(self) -> dict:
        return asdict(self)


def mantel(a, b, n_perm: int = DEFAULT_PERMUTATIONS, seed: int = 0, method: str = "spearman") -> MantelResult:
    """Mantel permutation test between two RDMs (labelled ``RDM``s are aligned by emotion name first).

    For Spearman the entries are ranked once: permuting emotion labels only moves the off-diagonal
    cells around, so the permuted ranks are the permuted rank matrix and each permutation is a dot product.
    """
    ma, mb = _aligned(a, b)
    n = ma.shape[0]
    iu = np.triu_indices(n, k=1)
    xa, xb = ma[iu], mb[iu]
    if not (np.isfinite(xa).all() and np.isfinite(xb).all()):
        raise ValueError("Mantel test needs finite RDM entries")
    if method == "spearman":
        xa, xb = _st.rankdata(xa), _st.rankdata(xb)
    elif method != "pearson":
        raise ValueError(f"method {method!r}: use 'spearman' or 'pearson'")
    za = _zscore(xa)
    full_b = np.zeros((n, n))
    full_b[iu] = _zscore(xb)
    full_b = full_b + full_b.T
    observed = float(za @ full_b[iu] / za.size)
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    chunk = 2000
    for start in range(0, n_perm, chunk):
        k = min(chunk, n_perm - start)
        perms = np.argsort(rng.random((k, n)), axis=1)  # k independent permutations of the n labels
        rows, cols = perms[:, iu[0]], perms[:, iu[1]]
        null[start:start + k] = full_b[rows, cols] @ za / za.size
    p = (1.0 + float(np.sum(null >= observed - 1e-12))) / (1.0 + n_perm)
    return MantelResult(observed, p, n_perm, method, float(null.mean()), float(null.std()), n)


# ---- bootstrap over emotions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BootstrapResult:
    estimate: float
    lo: float
    hi: float
    level: float
    n_boot: int
    n_valid: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(a, b, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = 0.95,
                 method: str = "spearman") -> BootstrapResult:
    """Percentile bootstrap CI of the RSA, resampling emotions with replacement.

    Each resample takes n emotion indices with replacement and uses every cell (i, j), i < j, of the
    resampled matrices except those where both positions drew the same emotion.
    """
    ma, mb = _aligned(a, b)
    n = ma.shape[0]
    estimate = correlate(upper(ma), upper(mb), method)
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(n, k=1)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        r, c = idx[iu[0]], idx[iu[1]]
        keep = r != c
        v = correlate(ma[r[keep], c[keep]], mb[r[keep], c[keep]], method)
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return BootstrapResult(estimate, float("nan"), float("nan"), level, n_boot, 0, method)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(vals), [alpha, 1.0 - alpha])
    return BootstrapResult(estimate, float(lo), float(hi), level, n_boot, len(vals), method)


# ---- split-half reliability (noise ceiling) ----------------------------------------------------------------

@dataclass(frozen=True)
class SplitHalfResult:
    reliability: float  # Spearman-Brown corrected, averaged over splits
    raw_mean: float  # uncorrected half-vs-half Spearman, averaged over splits
    sd: float  # SD of the corrected value over splits
    n_splits: int
    n_emotions: int
    min_passages: int
    threshold: float
    too_noisy: bool

    def as_dict(self) -> dict:
        return asdict(self)


def spearman_brown(r: float, factor: float = 2.0) -> float:
    """Spearman-Brown prophecy for a test ``factor`` times longer. Non-positive r is returned unchanged: the
    correction assumes a positive reliability (and is undefined at r = -1)."""
    return factor * r / (1.0 + (factor - 1.0) * r) if r > 0 else r


def split_half(passage_acts, labels, n_splits: int = 100, seed: int = 0,
               threshold: float = NOISE_CEILING_THRESHOLD, emotions=None) -> SplitHalfResult:
    """Split-half reliability of the cosine RDM built from passage activations [P, d] with labels [P].

    Per split, each emotion's passages are shuffled and cut in two halves (sizes floor/ceil); each half
    gives per-emotion means, centred as in the paper (minus the mean of the per-emotion means), and a
    cosine RDM; the two RDMs are correlated (Spearman, upper triangle) and Spearman-Brown corrected to
    full length. Every emotion needs at least two passages.
    """
    x = as_array(passage_acts)
    labels = [str(v) for v in labels]
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise ValueError(f"passage_acts {x.shape} and {len(labels)} labels disagree")
    emotions = list(emotions) if emotions is not None else list(dict.fromkeys(labels))
    groups = [np.flatnonzero(np.asarray(labels) == e) for e in emotions]
    counts = [g.size for g in groups]
    if len(groups) < 3:
        raise ValueError(f"split-half needs at least 3 emotions, got {len(groups)}")
    if min(counts) < 2:
        bad = [e for e, c in zip(emotions, counts) if c < 2]
        raise ValueError(f"split-half needs >= 2 passages per emotion; too few for {bad}")
    rng = np.random.default_rng(seed)
    raw, corrected = [], []
    for _ in range(n_splits):
        h1, h2 = [], []
        for g in groups:
            perm = rng.permutation(g)
            cut = perm.size // 2
            h1.append(x[perm[:cut]].mean(axis=0))
            h2.append(x[perm[cut:]].mean(axis=0))
        r = correlate(upper(cosine_matrix(centre(np.stack(h1)))), upper(cosine_matrix(centre(np.stack(h2)))))
        if np.isfinite(r):
            raw.append(r)
            corrected.append(spearman_brown(r))
    rel = float(np.mean(corrected)) if corrected else float("nan")
    return SplitHalfResult(rel, float(np.mean(raw)) if raw else float("nan"),
                           float(np.std(corrected)) if corrected else float("nan"), len(corrected), len(emotions),
                           int(min(counts)), threshold, bool(not np.isfinite(rel) or rel < threshold))


# ---- size correlations (Section 3.5) -----------------------------------------------------------------------

# The paper's four headline tests (Section 3.5 table); Bonferroni over these four is alpha = 0.05/4.
PAPER_SIZE_TESTS: tuple[tuple[str, str], ...] = (
    ("d_model", "anisotropy"),
    ("size_b", "anisotropy"),
    ("size_b", "rdm_std"),
    ("size_b", "best_layer_pct"),
)
# The d_model variants the paper mentions in passing ("largest difference across the four tests is 0.06").
SUPPLEMENTARY_SIZE_TESTS: tuple[tuple[str, str], ...] = (
    ("d_model", "rdm_std"),
    ("d_model", "best_layer_pct"),
)


def size_correlations(rows: list[dict], tests=PAPER_SIZE_TESTS, alpha: float = 0.05) -> list[dict]:
    """Spearman rho and uncorrected p per (predictor, outcome), Bonferroni over ``tests``.

    ``rows`` are dicts with the keys of Table A1 (``size_b``, ``d_model``, ``anisotropy``, ``rdm_std``,
    ``best_layer_pct``); rows missing a value are left out of that test (``n`` says how many remained).
    """
    from statsmodels.stats.multitest import multipletests

    out = []
    for pred, outc in tests:
        pairs = [(r.get(pred), r.get(outc)) for r in rows]
        pairs = [(float(p), float(o)) for p, o in pairs if p is not None and o is not None
                 and np.isfinite(float(p)) and np.isfinite(float(o))]
        rho = p = float("nan")
        if len(pairs) >= 3:
            xs, ys = zip(*pairs)
            if np.ptp(xs) > 0 and np.ptp(ys) > 0:
                res = _st.spearmanr(xs, ys)
                rho, p = float(res.statistic), float(res.pvalue)
        out.append({"predictor": pred, "outcome": outc, "n": len(pairs), "rho": rho, "p": p})
    ps = [r["p"] for r in out]
    ok = [k for k, v in enumerate(ps) if np.isfinite(v)]
    if ok:
        reject, adj, _, _ = multipletests([ps[k] for k in ok], alpha=alpha, method="bonferroni")
        for k, rj, pa in zip(ok, reject, adj):
            out[k]["p_bonferroni"] = float(pa)
            out[k]["significant_bonferroni"] = bool(rj)
    for r in out:
        r.setdefault("p_bonferroni", float("nan"))
        r.setdefault("significant_bonferroni", None)
        r["m_tests"] = len(ok)
    return out
