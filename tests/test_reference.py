"""The frozen reference data (artifacts/reference) and its loaders (analysis.reference)."""
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis import reference as ref
from repro.models import PAPER_MODELS

SOURCE = Path("/work/shared/reference/neural-mri")


def test_table_a1_rows_keys_and_order():
    rows = ref.table_a1()
    assert len(rows) == 12
    assert all(tuple(r) == ref.TABLE_A1_KEYS for r in rows)
    assert [r["row"] for r in rows] == list(range(1, 13))
    assert [r["hub_id"] for r in rows] == [m.hub_id for m in PAPER_MODELS]
    gemma_pt = rows[4]
    assert (gemma_pt["hub_id"], gemma_pt["best_layer"], gemma_pt["anisotropy"], gemma_pt["rdm_std"]) == \
        ("google/gemma-3-1b-pt", 9, 0.997, 0.333)
    mistral_b = rows[8]
    assert mistral_b["hub_id"] == "mistralai/Mistral-7B-v0.3"
    assert (mistral_b["best_layer"], mistral_b["best_layer_pct"], mistral_b["anisotropy"], mistral_b["rdm_std"],
            mistral_b["backend"]) == (13, 40.6, 0.532, 0.097, "HF")
    assert rows[11]["anisotropy"] == 0.680 and rows[11]["rdm_std"] == 0.106


def test_size_table_signed_and_exact_keys():
    rows = ref.size_table()
    assert [tuple(r) for r in rows] == [("predictor", "outcome", "rho", "p", "source")] * 4
    assert [(r["predictor"], r["outcome"], r["rho"]) for r in rows] == [
        ("d_model", "anisotropy", -0.882), ("size_b", "anisotropy", -0.820), ("size_b", "rdm_std", -0.891),
        ("size_b", "best_layer_pct", -0.484)]
    assert [r["p"] for r in rows] == [1.0e-4, 0.0011, 1.0e-4, 0.11]  # as printed
    assert all(r["source"] == "Section 3.5" for r in rows)


def test_decomposition_and_mti():
    assert ref.decomposition() == {
        "mistralai/Mistral-7B-Instruct-v0.3": {"L1_A_vs_C": 0.091, "L2_B_vs_C": 0.019, "L3_C_vs_D": 0.215,
                                               "L4_A_vs_D": 0.409},
        "meta-llama/Llama-3.1-8B-Instruct": {"L1_A_vs_C": 0.355, "L2_B_vs_C": 0.033, "L3_C_vs_D": 0.527,
                                             "L4_A_vs_D": 0.325}}
    assert ref.mti_scores() == {"Qwen/Qwen2.5-1.5B-Instruct": {"B": 0.80, "D": 0.61},
                                "meta-llama/Llama-3.2-3B-Instruct": {"B": 0.20, "D": 0.85}}


def test_paper_numbers_schema():
    doc = ref.load_paper_numbers()
    ids = [e["id"] for e in doc["numbers"]]
    assert len(ids) == len(set(ids))
    for e in doc["numbers"]:
        assert set(e) >= {"id", "value", "source"}
        assert e["source"].startswith(("Table A1", "Section", "Appendix")), e
    assert "sign" in doc["conventions"]


def test_released_rdm_of_rdms():
    labels, mat = ref.released_rdm_of_rdms()
    assert mat.shape == (12, 12)
    assert set(labels) == set(ref.N12_LABEL_HUB_IDS)
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), 1.0)
    i, j = labels.index("Qwen1.5B-I"), labels.index("Llama3.2-3B-I")
    assert round(mat[i, j], 4) == 0.8134
    # Table A1 row 9 is stood in for by the released v0.1 base.
    assert ref.N12_ROLE["mistralai/Mistral-7B-v0.3"] == "Mistral7B-B"
    assert ref.N12_LABEL_HUB_IDS["Mistral7B-B"] == "mistralai/Mistral-7B-v0.1"


def test_released_metadata():
    assert ref.released_metadata("Qwen/Qwen2.5-1.5B") is None  # not in the authors' index
    m = ref.released_metadata("google/gemma-3-1b-pt")
    assert m["best_layer"] == 9 and math.isnan(m["anisotropy"]["layer_13_50pct"])
    assert ref.released_metadata("mistralai/Mistral-7B-v0.3")["anisotropy"]["layer_13_best"] == 0.532
    assert ref.released_metadata("mistralai/Mistral-7B-v0.1")["best_layer"] == 8


def test_released_copies_match_provenance():
    prov = ref.released_provenance()
    assert len(prov["files"]) == 25
    for e in prov["files"]:
        data = (ref.released_dir() / e["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"], e["path"]
        assert e["source_repo"] == "JihoonJeong/Neural-MRI" and len(e["commit"]) == 40
    paths = {e["path"] for e in prov["files"]}
    assert not any("emotion_stories_sample" in p for p in paths)
    assert {p for p in paths if "/mti/" in p} == {f for fs in ref.MTI_FILES.values() for f in fs.values()}
    table = ref.parse_provenance_md((ref.released_dir() / "PROVENANCE.md").read_text(encoding="utf-8"))
    assert len(table) == 58
    assert all(table[e["path"]]["sha256"] == e["sha256"] for e in prov["files"])


@pytest.mark.skipif(not SOURCE.is_dir(), reason="read-only source of the released files not mounted")
def test_sync_released_is_reproducible(tmp_path):
    copied = ref.sync_released(SOURCE, ref_dir=tmp_path)
    assert len(copied) == 25
    for rel in copied + ["PROVENANCE.md", "PROVENANCE.json"]:
        assert (tmp_path / "released" / rel).read_bytes() == (ref.released_dir() / rel).read_bytes(), rel


def test_sync_released_refuses_altered_source(tmp_path):
    src = tmp_path / "src"
    (src / "paper5/analysis/h2_pilot").mkdir(parents=True)
    good = json.dumps({"x": 1}).encode()
    (src / "paper5/analysis/h2_pilot/cross_backend_test.json").write_bytes(good + b" ")
    digest = hashlib.sha256(good).hexdigest()
    (src / "PROVENANCE.md").write_text(f"| `paper5/analysis/h2_pilot/cross_backend_test.json` | `{'a' * 40}` | "
                                       f"{len(good)} | `{digest}` | test |\n")
    with pytest.raises(ValueError, match="sha256"):
        ref.sync_released(src, ref_dir=tmp_path / "out")
