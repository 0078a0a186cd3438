"""Representational similarity analysis (Section 2.6, 3.1-3.4).

An ``RDM`` is a labelled cosine-similarity matrix. Two RDMs are only ever compared after aligning them
on the emotions they share *by name*: a comprehension run has 21 emotions (with neutral), a generation
run 20, and two runs may list them in different orders. Alignment refuses duplicated labels and fewer
than ``MIN_SHARED`` shared emotions instead of comparing silently.

RSA statistic: Spearman (primary) and Pearson between the upper triangles (k=1) of the two aligned RDMs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _st

from .descriptors import as_array, rdm_std, upper
from .descriptors import ANISOTROPY_THRESHOLD, is_flagged

MIN_SHARED = 3


class AlignmentError(ValueError):
    """Two RDMs cannot be compared: duplicated labels or too few shared emotions."""


@dataclass
class RDM:
    """A cosine RDM with the labels that say which row is which.

    ``model`` is the identifier (hub id for runs, the released label for reference data), ``label`` a short
    display name; ``anisotropy`` is measured at ``layer`` (the best layer) and drives the reliability flag.
    """

    matrix: np.ndarray
    emotions: tuple[str, ...]
    model: str
    layer: int | None = None
    anisotropy: float | None = None
    label: str | None = None
    family: str | None = None
    variant: str | None = None
    source: str = "run"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.matrix = as_array(self.matrix)
        self.emotions = tuple(str(e) for e in self.emotions)
        n = len(self.emotions)
        if self.matrix.shape != (n, n):
            raise ValueError(f"{self.model}: RDM shape {self.matrix.shape} does not match {n} emotion labels")
        check_labels(self.emotions, self.model)
        if self.label is None:
            self.label = self.model

    @property
    def flagged(self) -> bool:
        """Anisotropy above the 0.95 reliability threshold (unknown anisotropy is not flagged)."""
        return anisotropy_flag(self.anisotropy)

    @property
    def std(self) -> float:
        return rdm_std(self.matrix)

    def subset(self, emotions) -> "RDM":
        idx = [self.emotions.index(e) for e in emotions]
        return RDM(self.matrix[np.ix_(idx, idx)], tuple(emotions), self.model, self.layer, self.anisotropy,
                   self.label, self.family, self.variant, self.source, dict(self.meta))


def anisotropy_flag(anisotropy: float | None, threshold: float = ANISOTROPY_THRESHOLD) -> bool:
    """Section 4.1.3: anisotropy above 0.95 makes a cosine-RDM comparison unreliable."""
    return is_flagged(anisotropy, threshold)


def check_labels(labels, who: str = "RDM") -> None:
    seen, dup = set(), []
    for lab in labels:
        if lab in seen:
            dup.append(lab)
        seen.add(lab)
    if dup:
        raise AlignmentError(f"{who}: duplicated emotion labels {sorted(set(dup))}; refusing to compare")


def align(a: RDM, b: RDM, min_shared: int = MIN_SHARED) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Sub-matrices of ``a`` and ``b`` over their shared emotions, both in ``a``'s order."""
    check_labels(a.emotions, a.model)
    check_labels(b.emotions, b.model)
    in_b = set(b.emotions)
    shared = tuple(e for e in a.emotions if e in in_b)
    if len(shared) < min_shared:
        raise AlignmentError(
            f"{a.label} vs {b.label}: only {len(shared)} shared emotion label(s) {list(shared)}; "
            f"need at least {min_shared} (labels: {list(a.emotions)[:5]}... vs {list(b.emotions)[:5]}...)")
    ia = [a.emotions.index(e) for e in shared]
    ib = [b.emotions.index(e) for e in shared]
    return a.matrix[np.ix_(ia, ia)], b.matrix[np.ix_(ib, ib)], shared


@dataclass(frozen=True)
class RSAResult:
    spearman: float
    pearson: float
    n_emotions: int
    n_pairs: int
    emotions: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"spearman": self.spearman, "pearson": self.pearson, "n_emotions": self.n_emotions,
                "n_pairs": self.n_pairs}


def _finite_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def correlate(x, y, method: str = "spearman") -> float:
    """Spearman or Pearson between two equal-length vectors (NaN entries dropped pairwise)."""
    x, y = _finite_pair(as_array(x).ravel(), as_array(y).ravel())
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    if method == "spearman":
        return float(_st.spearmanr(x, y).statistic)
    if method == "pearson":
        return float(_st.pearsonr(x, y).statistic)
    raise ValueError(f"method {method!r}: use 'spearman' or 'pearson'")


def compare_matrices(m1, m2, method: str = "spearman") -> float:
    """RSA of two matrices already in the same row order (same shape required; no label check)."""
    m1, m2 = as_array(m1), as_array(m2)
    if m1.shape != m2.shape:
        raise AlignmentError(f"matrices of shape {m1.shape} and {m2.shape}: align them by emotion label first")
    return correlate(upper(m1), upper(m2), method)


def compare(a: RDM, b: RDM, min_shared: int = MIN_SHARED) -> RSAResult:
    """Spearman and Pearson RSA of two labelled RDMs, aligned on shared emotions by name."""
    ma, mb, shared = align(a, b, min_shared)
    ua, ub = upper(ma), upper(mb)
    return RSAResult(correlate(ua, ub, "spearman"), correlate(ua, ub, "pearson"), len(shared), ua.size, shared)


def rdm_of_rdms(rdms: list[RDM], method: str = "spearman") -> tuple[list[str], np.ndarray]:
    """Pairwise RSA between every two RDMs present -> (labels, symmetric matrix with 1 on the diagonal)."""
    n = len(rdms)
    out = np.eye(n)
    for i, j in itertools.combinations(range(n), 2):
        r = compare(rdms[i], rdms[j])
        out[i, j] = out[j, i] = r.spearman if method == "spearman" else r.pearson
    return [r.label for r in rdms], out


# ---- summaries over an RDM-of-RDMs matrix -------------------------------------------------------------------

@dataclass
class ModelInfo:
    """What the summaries need to know about each row of an RDM-of-RDMs matrix."""

    label: str
    family: str | None = None
    variant: str | None = None  # "B" | "I" | None
    size_b: float | None = None
    anisotropy: float | None = None
    hub_id: str | None = None

    @property
    def flagged(self) -> bool:
        return anisotropy_flag(self.anisotropy)


def _pairs(matrix, idx) -> list[tuple[int, int, float]]:
    return [(i, j, float(matrix[i, j])) for i, j in itertools.combinations(idx, 2)]


def _summ(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "min": None, "max": None, "mean": None}
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}


def within_family_pairs(info: list[ModelInfo], matrix) -> list[dict]:
    """Base/instruct pairs of the same family and size (e.g. Qwen2.5-1.5B vs Qwen2.5-1.5B-Instruct)."""
    out = []
    for i, j in itertools.combinations(range(len(info)), 2):
        a, b = info[i], info[j]
        if a.family and a.family == b.family and {a.variant, b.variant} == {"B", "I"} and a.size_b == b.size_b:
            base, inst = (a, b) if a.variant == "B" else (b, a)
            out.append({"family": a.family, "base": base.label, "instruct": inst.label,
                        "rho": float(matrix[i, j]), "flagged": a.flagged or b.flagged})
    return out


def mature_block(info: list[ModelInfo], matrix) -> dict:
    """Range and mean of RSA among mature models (= not flagged by anisotropy).

    ``cross_family_instruct`` is the paper's headline block (Section 3.1: ten pairs among the five mature
    instruct models, 0.742-0.919, mean 0.834); ``all`` is every mature pair; ``within_family`` the base/instruct
    pairs; ``flagged_vs_rest`` the pairs involving at least one flagged model.
    """
    matrix = as_array(matrix)
    mature = [k for k, m in enumerate(info) if not m.flagged]
    flagged = [k for k, m in enumerate(info) if m.flagged]
    inst = [k for k in mature if info[k].variant == "I"]
    cross_inst = [(i, j, v) for i, j, v in _pairs(matrix, inst) if info[i].family != info[j].family]
    wf = [p["rho"] for p in within_family_pairs(info, matrix) if not p["flagged"]]
    fl = [float(matrix[i, j]) for i in flagged for j in range(len(info)) if j != i and (j not in flagged or j > i)]
    return {
        "mature_models": [info[k].label for k in mature],
        "flagged_models": [info[k].label for k in flagged],
        "all": _summ([v for _, _, v in _pairs(matrix, mature)]),
        "cross_family_instruct": _summ([v for _, _, v in cross_inst]),
        "cross_family_instruct_pairs": [{"a": info[i].label, "b": info[j].label, "rho": v} for i, j, v in cross_inst],
        "within_family": _summ(wf),
        "flagged_vs_rest": _summ(fl),
    }


MTI_PAIR = ("Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-3B-Instruct")


def mti_dissociation(info: list[ModelInfo], matrix, pair=MTI_PAIR, mti_scores: dict | None = None) -> dict:
    """Section 3.2: the Qwen-I / Llama-3.2-I RSA against the mature cross-family instruct distribution.

    The reference distribution excludes the pair itself; percentile = share of the reference pairs with
    rho <= the pair's rho (in %), z = (rho - mean) / sd (ddof=1). Raises KeyError when a model is missing.
    """
    matrix = as_array(matrix)
    keys = [m.hub_id or m.label for m in info]
    ia, ib = keys.index(pair[0]), keys.index(pair[1])
    rho = float(matrix[ia, ib])
    block = mature_block(info, matrix)
    ref = [p["rho"] for p in block["cross_family_instruct_pairs"]
           if {p["a"], p["b"]} != {info[ia].label, info[ib].label}]
    out = {"pair": [info[ia].label, info[ib].label], "hub_ids": list(pair), "rho": rho,
           "reference": _summ(ref), "percentile": None, "z": None,
           "within_mature_range": None, "flagged": info[ia].flagged or info[ib].flagged}
    if len(ref) >= 2:
        r = np.asarray(ref)
        out["percentile"] = float(100.0 * np.mean(r <= rho))
        sd = float(np.std(r, ddof=1))
        out["z"] = float((rho - r.mean()) / sd) if sd > 0 else None
        out["within_mature_range"] = bool(r.min() <= rho <= r.max())
    if mti_scores:
        out["mti"] = {h: mti_scores.get(h) for h in pair}
    return out
