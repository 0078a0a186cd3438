"""The report: index.md + self-contained index.html from the paper's reference numbers and from runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis.report import build_report


def test_report_from_reference(tmp_path):
    index = build_report(from_reference=True)
    base = Path(os.environ["EMOGEO_ARTIFACTS"])  # the conftest points it at this test's tmp dir
    assert index == base / "report" / "index.md"
    md = index.read_text()
    page = (base / "report" / "index.html").read_text()
    for text in (md, page):
        assert "Size-maturity correlations" in text
        assert "-0.882" in text and "-0.891" in text and "-0.484" in text  # the size table from Table A1
        assert "waiting for a GPU run" in text
        assert "stand-ins" in text and "SmolLM2-135M-Instruct" in text and "Gemma-3-270M" in text
        assert "Four-layer decomposition" in text and "over-estimates" in text
    assert "paper reference numbers only" in md
    assert page.count("data:image/png;base64,") == 6  # every figure inlined: no external files needed
    assert "<table>" in page and "src=\"../" not in page
    for name in ("fig1_rdm_of_rdms", "fig3_size", "fig6_decomposition"):
        assert (base / "figures" / f"{name}.png").exists() and (base / "figures" / f"{name}.pdf").exists()
    assert (base / "tables" / "size_correlations.csv").read_text().count("\n") == 7  # header + 4 + 2 rows
    assert "not run" in md  # verify.md is absent and says so


def test_report_from_runs_lists_runs_and_includes_verify(tmp_path):
    from analysis.runs import AnalysisConfig
    from test_tables_figures import make_fake_runs

    root = tmp_path / "art"
    make_fake_runs(root, generation=False, extras=False)
    (root / "verify").mkdir(parents=True)
    (root / "verify" / "verify.md").write_text("# Verify\n\n| claim | status |\n|---|---|\n| S3.5 | PASS-MARKER |\n")
    index = build_report(from_reference=False, root=root, config=AnalysisConfig(n_perm=200, n_boot=50, n_splits=5))
    md = index.read_text()
    page = index.with_name("index.html").read_text()
    assert "Mode: runs." in md and "Qwen_Qwen2.5-1.5B/comprehension-fp32-hf" in md
    assert "PASS-MARKER" in md and "PASS-MARKER" in page
    # the fake runs are fp32, not the paper's fp16: no headline claim is reproduced by them
    claims = json.loads((root / "analysis" / "results.json").read_text())["claims"]
    assert {c["status"] for c in claims} == {"waiting for a GPU run"} and "reproduced (verify PASS)" not in md
    assert (root / "analysis" / "results.json").exists()


def test_headline_claims_are_judged_by_their_values(tmp_path):
    """Section 3.2's pair run at fp16 on random vectors: the runs exist, but the claim is 'ran, disagrees',
    never 'reproduced'."""
    import synthetic_runs

    from analysis.tables import _claims
    from analysis.runs import collect

    synthetic_runs.comprehension(tmp_path, "Qwen/Qwen2.5-1.5B-Instruct", best=15, aniso=0.848, std=0.130, seed=1)
    synthetic_runs.comprehension(tmp_path, "meta-llama/Llama-3.2-3B-Instruct", seed=2)
    rows = {c["section"]: c for c in _claims(collect(tmp_path / "artifacts"), {})}
    assert rows["3.2"]["status"] == "ran, disagrees (verify FAIL)" and rows["3.2"]["missing"] == []
    assert rows["3.1"]["status"] == "waiting for a GPU run" and "Mistral-7B-v0.3-I" in rows["3.1"]["missing"]


@pytest.mark.parametrize("mode", [True])
def test_report_entry_point_signature(mode):
    import inspect

    sig = inspect.signature(build_report)
    assert list(sig.parameters)[:2] == ["from_reference", "root"]
    assert sig.parameters["from_reference"].default is False


def test_two_stimulus_sets_side_by_side_and_the_report_names_the_run_it_used(tmp_path):
    """Issue 21: one model extracted on two stimulus sets leaves two runs; the comparisons read the shipped
    set's run unless another set is asked for, and Table A1 and the overview say which."""
    import json
    import shutil

    import numpy as np

    from analysis.runs import AnalysisConfig
    from analysis.tables import compute
    from test_tables_figures import make_fake_runs

    root = tmp_path / "art"
    make_fake_runs(root, generation=False, extras=False)
    ours = root / "runs" / "Qwen_Qwen2.5-1.5B" / "comprehension-fp32-hf"
    theirs = ours.with_name("comprehension-fp32-hf-stim12345678")
    shutil.copytree(ours, theirs)
    meta = json.loads((theirs / "metadata.json").read_text())
    meta["stimuli"] = {"default": False, "set": "authors", "sha256": "12345678" + "0" * 56}
    rdm = np.asarray(meta["rdm"])
    perm = np.random.default_rng(1).permutation(len(rdm))
    meta["rdm"] = rdm[np.ix_(perm, perm)].tolist()  # another geometry: the pairs would change if it were read
    (theirs / "metadata.json").write_text(json.dumps(meta))
    cfg = dict(n_perm=50, n_boot=20, n_splits=3)

    def used_and_rho(stimuli_set):
        res = compute(False, root, AnalysisConfig(stimuli_set=stimuli_set, **cfg))
        used = {u["run"] for u in res["runs_used"] if u["model"] == "Qwen/Qwen2.5-1.5B"}
        rows = {r["run"]: r["used"] for r in res["table_a1"] if r["model"] == "Qwen/Qwen2.5-1.5B"}
        rho = [p["rho"] for p in res["pairs"] if "Qwen2.5-1.5B" in p["a"] + p["b"]]
        return used, rows, rho, res

    used, rows, rho_ours, res = used_and_rho(None)
    assert used == {"Qwen_Qwen2.5-1.5B/comprehension-fp32-hf"}
    assert rows == {"Qwen_Qwen2.5-1.5B/comprehension-fp32-hf": True,
                    "Qwen_Qwen2.5-1.5B/comprehension-fp32-hf-stim12345678": False}  # both listed, side by side
    assert "stimulus set 'emogeo' first" in res["runs_used_rules"]
    used, rows, rho_theirs, _ = used_and_rho("authors")
    assert used == {"Qwen_Qwen2.5-1.5B/comprehension-fp32-hf-stim12345678"}
    assert rho_ours != rho_theirs  # the comparisons really read the other run
    index = build_report(from_reference=False, root=root, config=AnalysisConfig(**cfg))
    md = index.read_text()
    assert "Runs used for the comparisons" in md
    assert "is our own, written for this project, not the authors' texts" in md  # said plainly
    assert "`Qwen_Qwen2.5-1.5B/comprehension-fp32-hf` (stimuli emogeo" in md
    a1 = (root / "tables" / "table_a1.csv").read_text().splitlines()
    assert a1[0].split(",")[:4] == ["model", "run", "used", "stimuli"]
    assert any("comprehension-fp32-hf-stim12345678,no,authors" in line for line in a1)
