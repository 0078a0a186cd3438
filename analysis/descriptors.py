"""Geometric descriptors of Section 2.5, numpy in / numpy (or float) out.

Every function accepts a numpy array or anything ``np.asarray`` understands; a torch tensor is accepted
too (it is moved to the CPU and converted), so the extraction code can call these on its activations
without this module importing torch. Computation is in float64.

- ``cosine_matrix`` / ``rdm``: n x n cosine similarity matrix of n row vectors (the paper's "cosine RDM",
  a *similarity* matrix, diagonal 1).
- ``mean_pairwise_cosine``: mean of the off-diagonal upper triangle of the cosine matrix.
- ``anisotropy``: mean pairwise cosine of a set of activations (the paper measures it on twenty neutral
  sentences at the extraction layer).
- ``rdm_std``: standard deviation (ddof=0) of the off-diagonal upper triangle of an RDM.
- ``centre``: per-emotion means minus the mean of the means (Section 2.3).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["as_array", "finite_float", "upper", "cosine_matrix", "rdm", "mean_pairwise_cosine", "anisotropy",
           "rdm_std", "centre", "layer_pct"]


def as_array(x) -> np.ndarray:
    """numpy float64 view of ``x`` (numpy array, list, or a torch tensor on any device)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def finite_float(x) -> float | None:
    """``float(x)`` when ``x`` is a finite number, else None (None, text, NaN, inf): how JSON artifacts' optional
    numbers are read."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def upper(matrix, k: int = 1) -> np.ndarray:
    """Upper triangle above the diagonal (k=1) of a square matrix, row-major order."""
    m = as_array(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    return m[np.triu_indices(m.shape[0], k=k)]


def cosine_matrix(vectors) -> np.ndarray:
    """Cosine similarity between every pair of rows of ``vectors`` [n, d] -> [n, n].

    A zero (or non-finite) row gives NaN in its row and column rather than a silent 0.
    """
    x = as_array(vectors)
    if x.ndim != 2:
        raise ValueError(f"expected [n, d] vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    safe = np.where(bad, 1.0, norms)
    unit = x / safe[:, None]
    sim = unit @ unit.T
    sim = np.clip(sim, -1.0, 1.0)
    if bad.any():
        sim[bad, :] = np.nan
        sim[:, bad] = np.nan
    np.fill_diagonal(sim, np.where(bad, np.nan, 1.0))
    return sim


def rdm(vectors) -> np.ndarray:
    """The paper's cosine RDM: cosine similarity matrix of the (centred) emotion vectors."""
    return cosine_matrix(vectors)


def mean_pairwise_cosine(vectors) -> float:
    """Mean cosine over all unordered pairs of distinct rows."""
    x = as_array(vectors)
    if x.shape[0] < 2:
        raise ValueError("need at least two vectors for a pairwise cosine")
    return float(np.mean(upper(cosine_matrix(x))))


def anisotropy(activations) -> float:
    """Anisotropy of a set of activations [n, d]: their mean pairwise cosine (Section 2.5, item 1)."""
    return mean_pairwise_cosine(activations)


def rdm_std(matrix) -> float:
    """Standard deviation (population, ddof=0) of the off-diagonal upper triangle of an RDM."""
    return float(np.std(upper(matrix)))


def centre(emotion_means) -> np.ndarray:
    """Per-emotion means [n, d] minus their mean over emotions (the paper's centring, Section 2.3)."""
    m = as_array(emotion_means)
    return m - m.mean(axis=0, keepdims=True)


def layer_pct(layer: int, n_layers: int) -> float:
    """Layer index as a percentage of depth, the paper's convention (15 of 28 -> 53.6)."""
    return 100.0 * float(layer) / float(n_layers)


# ---- the reliability flag (Section 4.1.3): anisotropy at the extraction layer above 0.95 makes any
# cosine-RDM comparison involving the model unreliable.
ANISOTROPY_THRESHOLD = 0.95


def is_flagged(anisotropy_value: float | None, threshold: float = ANISOTROPY_THRESHOLD) -> bool:
    return anisotropy_value is not None and math.isfinite(anisotropy_value) and anisotropy_value > threshold


def flag_text(anisotropy_value: float | None, threshold: float = ANISOTROPY_THRESHOLD) -> str:
    """Table cell for the reliability flag."""
    if anisotropy_value is None or not math.isfinite(anisotropy_value):
        return "unknown"
    return f"UNRELIABLE (>{threshold:g})" if is_flagged(anisotropy_value, threshold) else "ok"
