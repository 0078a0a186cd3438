"""Anisotropy reliability (Section 4.1): the flag, the invariance of per-RDM linear normalisation, and an
All-but-the-Top isotropisation (Mu, Bhat & Viswanath 2018) done on the vectors, not on the RDM.

Flag rule: anisotropy at the extraction layer > 0.95 => any cosine-RDM comparison involving the model is
unreliable (Section 4.1.3). The flag is carried into every table.

Linear normalisation (Section 4.1.2), RDM' = (RDM - (1 - anisotropy)) / std(RDM), is an increasing affine
map of each RDM's entries; Spearman and Pearson are invariant under it. ``linear_normalise`` exists so the
tables and Figure 5 can show that the numbers do not move.

All-but-the-Top: estimate the mean and the top-``D`` principal directions on a *reference* set (here the
twenty neutral-sentence activations at the same layer, ``neutral_acts``), subtract the mean from the
vectors and project out those directions; cosines are taken afterwards. ``D`` defaults to 2: Mu et al.
suggest D ~ d/100 for word vectors, but the statistics here come from only 20 neutral sentences, which
support at most a few stable principal directions (19 at the very most after centring); D=2 removes the
dominant "rogue" directions without spending most of the reference set's rank. It is an option
(``AnalysisConfig.isotropy_d`` / ``--isotropy-d``).

For the emotion RDM the isotropised vectors are re-centred over emotions as in the main pipeline, so the
neutral-mean subtraction cancels and the isotropised RDM is the cosine matrix of the centred emotion
vectors with the top-D neutral directions projected out.
"""
from __future__ import annotations

import numpy as np

# The flag lives with the descriptors (rsa uses it too); re-exported here, where Section 4.1 is implemented.
from .descriptors import ANISOTROPY_THRESHOLD, flag_text, is_flagged
from .descriptors import anisotropy, as_array, centre, cosine_matrix, rdm_std, upper

DEFAULT_D = 2
__all__ = ["ANISOTROPY_THRESHOLD", "DEFAULT_D", "affine", "all_but_the_top", "flag_text", "invariance_gap", "is_flagged",
           "isotropised_anisotropy", "isotropised_rdm", "linear_normalise", "top_directions"]


def linear_normalise(matrix, anisotropy_value: float) -> np.ndarray:
    """The paper's per-RDM normalisation (RDM - (1 - anisotropy)) / std(off-diagonal RDM)."""
    m = as_array(matrix)
    sd = rdm_std(m)
    return (m - (1.0 - anisotropy_value)) / (sd if sd > 0 else 1.0)


def affine(matrix, scale: float, shift: float) -> np.ndarray:
    """x -> scale * x + shift on every entry (scale > 0: order-preserving)."""
    return scale * as_array(matrix) + shift


def top_directions(reference, d: int = DEFAULT_D) -> tuple[np.ndarray, np.ndarray]:
    """Mean [dim] and top-``d`` principal directions [d, dim] of a reference set [n, dim]."""
    r = as_array(reference)
    mu = r.mean(axis=0)
    if d <= 0:
        return mu, np.zeros((0, r.shape[1]))
    _, _, vt = np.linalg.svd(r - mu, full_matrices=False)
    if d > vt.shape[0]:
        raise ValueError(f"D={d} principal directions requested from a reference set of rank <= {vt.shape[0]}")
    return mu, vt[:d]


def all_but_the_top(vectors, reference=None, d: int = DEFAULT_D) -> np.ndarray:
    """Subtract the reference mean and project out its top-``d`` principal directions.

    ``reference`` defaults to ``vectors`` themselves (Mu et al.'s original post-processing).
    """
    x = as_array(vectors)
    mu, u = top_directions(x if reference is None else reference, d)
    y = x - mu
    return y - (y @ u.T) @ u


def isotropised_rdm(vectors, neutral_acts, d: int = DEFAULT_D) -> np.ndarray:
    """Cosine RDM of the emotion vectors after All-but-the-Top with neutral-sentence statistics.

    ``vectors`` are the centred (or uncentred: the result is the same) per-emotion vectors at one layer,
    ``neutral_acts`` the neutral-sentence activations at that layer.
    """
    return cosine_matrix(centre(all_but_the_top(vectors, neutral_acts, d)))


def isotropised_anisotropy(neutral_acts, d: int = DEFAULT_D) -> float:
    """Anisotropy of the neutral activations after All-but-the-Top with their own statistics."""
    return anisotropy(all_but_the_top(neutral_acts, None, d))


def invariance_gap(m1, m2, aniso1: float, aniso2: float) -> dict:
    """RSA before and after per-RDM linear normalisation (the difference is numerical noise only)."""
    from .rsa import correlate

    u1, u2 = upper(m1), upper(m2)
    n1, n2 = upper(linear_normalise(m1, aniso1)), upper(linear_normalise(m2, aniso2))
    out = {}
    for method in ("spearman", "pearson"):
        raw, norm = correlate(u1, u2, method), correlate(n1, n2, method)
        out[method] = {"raw": raw, "normalised": norm, "abs_diff": abs(raw - norm)}
    return out
