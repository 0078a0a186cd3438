"""RSA: labelled RDMs, alignment by emotion name, summaries, and a cross-check against rsatoolbox."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.descriptors import anisotropy, cosine_matrix, mean_pairwise_cosine, rdm_std, upper
from analysis.rsa import (RDM, AlignmentError, ModelInfo, align, compare, compare_matrices, mature_block,
                          mti_dissociation, rdm_of_rdms, within_family_pairs)

EMO = ["afraid", "angry", "anxious", "blissful", "brooding", "calm", "desperate", "enthusiastic", "exasperated",
       "gloomy", "grateful", "guilty", "happy", "hopeful", "hostile", "loving", "nervous", "neutral", "proud",
       "reflective", "sad"]


def _rdm(seed: int, n: int = 21, d: int = 40) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return cosine_matrix(x - x.mean(0))


def test_descriptors_basic_values():
    same = np.ones((5, 8))
    assert anisotropy(same) == pytest.approx(1.0)
    orth = np.eye(4)
    assert mean_pairwise_cosine(orth) == pytest.approx(0.0)
    m = np.array([[1, .2, .4], [.2, 1, .6], [.4, .6, 1]])
    assert rdm_std(m) == pytest.approx(np.std([.2, .4, .6]))
    assert list(upper(m)) == [.2, .4, .6]


def test_descriptors_accept_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(6, 10, dtype=torch.float16)
    np.testing.assert_allclose(cosine_matrix(x), cosine_matrix(x.float().numpy()), atol=1e-6)
    assert isinstance(anisotropy(x), float)


def test_alignment_recovers_permuted_order():
    m = _rdm(0)
    a = RDM(m, EMO, "model-a")
    perm = np.random.default_rng(1).permutation(21)
    b = RDM(m[np.ix_(perm, perm)], [EMO[k] for k in perm], "model-b")
    assert compare(a, b).spearman == pytest.approx(1.0)
    assert compare(a, b).pearson == pytest.approx(1.0)
    # comparing the raw matrices in their different orders would be wrong, and gives a different number
    assert compare_matrices(a.matrix, b.matrix) < 0.5


def test_alignment_on_shared_emotions_21_vs_20():
    m = _rdm(2)
    a = RDM(m, EMO, "comprehension")
    keep = [k for k, e in enumerate(EMO) if e != "neutral"][::-1]  # 20 emotions, reversed order
    g = RDM(m[np.ix_(keep, keep)], [EMO[k] for k in keep], "generation")
    ma, mb, shared = align(a, g)
    assert len(shared) == 20 and "neutral" not in shared
    np.testing.assert_allclose(ma, mb)
    r = compare(a, g)
    assert r.n_emotions == 20 and r.n_pairs == 190 and r.spearman == pytest.approx(1.0)


def test_alignment_refuses_duplicates_and_too_few_shared():
    m = _rdm(3, n=4)
    with pytest.raises(AlignmentError, match="duplicated"):
        RDM(m, ["a", "b", "a", "c"], "dup")
    a = RDM(m, ["a", "b", "c", "d"], "x")
    b = RDM(m, ["a", "b", "y", "z"], "y")
    with pytest.raises(AlignmentError, match="shared"):
        compare(a, b)
    with pytest.raises(AlignmentError):
        compare_matrices(_rdm(0), _rdm(0, n=20))
    with pytest.raises(ValueError):
        RDM(m, ["a", "b", "c"], "shape mismatch")


def test_spearman_matches_rsatoolbox():
    rsat = pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rs_compare

    for seed in range(3):
        a = _rdm(10 + seed)
        b = a + 0.4 * _rdm(20 + seed)
        ours = compare(RDM(a, EMO, "a"), RDM(b, EMO, "b"))
        # rsatoolbox works on dissimilarity vectors; 1 - cosine is a decreasing map of both, ranks follow
        ra = RDMs(np.stack([1 - upper(a)]), dissimilarity_measure="cosine")
        rb = RDMs(np.stack([1 - upper(b)]), dissimilarity_measure="cosine")
        assert ours.spearman == pytest.approx(float(rs_compare(ra, rb, method="spearman")[0, 0]), abs=1e-9)
        assert ours.pearson == pytest.approx(float(rs_compare(ra, rb, method="corr")[0, 0]), abs=1e-9)
    assert rsat is not None


def test_rdm_of_rdms_symmetric():
    rdms = [RDM(_rdm(s), EMO, f"m{s}") for s in range(4)]
    labels, mat = rdm_of_rdms(rdms)
    assert labels == ["m0", "m1", "m2", "m3"]
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), 1.0)
    assert mat[0, 1] == pytest.approx(compare(rdms[0], rdms[1]).spearman)


def test_mature_block_within_family_and_flags():
    info = [ModelInfo("A-B", "A", "B", 1.0, 0.8), ModelInfo("A-I", "A", "I", 1.0, 0.7),
            ModelInfo("B-I", "B", "I", 2.0, 0.6), ModelInfo("G-B", "G", "B", 1.0, 0.99)]
    mat = np.array([[1, .95, .8, .2], [.95, 1, .85, .25], [.8, .85, 1, .15], [.2, .25, .15, 1]])
    s = mature_block(info, mat)
    assert s["flagged_models"] == ["G-B"]
    assert s["cross_family_instruct"] == {"n": 1, "min": .85, "max": .85, "mean": .85}
    assert s["all"]["n"] == 3 and s["all"]["mean"] == pytest.approx((.95 + .8 + .85) / 3)
    assert s["flagged_vs_rest"]["n"] == 3 and s["flagged_vs_rest"]["max"] == .25
    wf = within_family_pairs(info, mat)
    assert wf == [{"family": "A", "base": "A-B", "instruct": "A-I", "rho": .95, "flagged": False}]


def test_mti_dissociation_on_released_matrix():
    ref = pytest.importorskip("analysis.reference")
    try:
        labels, mat = ref.released_rdm_of_rdms()
        a1 = {r["hub_id"]: r for r in ref.table_a1()}
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"reference data unavailable: {exc}")
    info = []
    for lab in labels:
        hub = ref.N12_LABEL_HUB_IDS.get(lab, lab)
        row = a1.get(hub, {})
        info.append(ModelInfo(lab, row.get("family", "Mistral 7B"), row.get("variant", "B"), row.get("size_b"),
                              row.get("anisotropy", 0.48), hub))
    m = mti_dissociation(info, mat)
    assert m["rho"] == pytest.approx(0.8134, abs=5e-4)  # paper: 0.813
    assert m["within_mature_range"] is True
    assert m["reference"]["n"] == 9  # ten mature instruct pairs minus the pair itself
    assert 0 < m["percentile"] < 100
    block = mature_block(info, mat)["cross_family_instruct"]
    assert (round(block["min"], 3), round(block["max"], 3), round(block["mean"], 3)) == (0.742, 0.919, 0.834)
