"""`invoke verify` (analysis.verify): claims on real reference values, tampering, exit codes, run claims."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import synthetic_runs
from repro.models import resolve
from scipy.stats import spearmanr

from analysis import checksums as cs
from analysis import reference as ref
from analysis import verify as vf

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "artifacts" / "reference" / "paper_numbers.json"


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(REPO / "artifacts" / "reference", tmp_path / "artifacts" / "reference")
    (tmp_path / "checksums").mkdir()
    shutil.copyfile(REPO / "checksums" / "reference.sha256", tmp_path / "checksums" / "reference.sha256")
    return tmp_path


def _by_id(res):
    return {c["id"]: c for c in res.claims}


def _edit_paper(root, fn):
    p = root / "artifacts/reference/paper_numbers.json"
    doc = json.loads(p.read_text())
    fn({e["id"]: e for e in doc["numbers"]})
    p.write_text(json.dumps(doc, indent=2) + "\n")


# ---- derived claims on the real reference data -----------------------------------------------------

def test_size_table_from_table_a1_matches_paper_to_3_decimals():
    got = {r["id"]: r for r in vf.size_correlations_from_table_a1()}
    assert round(got["dmodel_anisotropy"]["rho"], 3) == -0.882
    assert round(got["size_anisotropy"]["rho"], 3) == -0.820
    assert round(got["size_rdm_std"]["rho"], 3) == -0.891
    assert round(got["size_best_layer_pct"]["rho"], 3) == -0.484
    assert got["dmodel_anisotropy"]["p"] == pytest.approx(1.5e-4, rel=0.05)
    assert got["size_anisotropy"]["p"] == pytest.approx(0.0011, rel=0.05)
    assert got["size_rdm_std"]["p"] == pytest.approx(1.0e-4, rel=0.05)
    assert got["size_best_layer_pct"]["p"] == pytest.approx(0.11, rel=0.05)


def test_size_table_derivation_is_sensitive_to_table_a1():
    rows = ref.table_a1()
    rows[9] = dict(rows[9], anisotropy=0.95)  # Mistral-I
    got = {r["id"]: r for r in vf.size_correlations_from_table_a1(rows)}
    assert round(got["dmodel_anisotropy"]["rho"], 3) != -0.882


def test_fresh_copy_exits_0_with_registered_findings_only(tree):
    res = vf.run_verify(tree, write=False)
    claims = _by_id(res)
    assert res.exit_code == 0, [c for c in res.claims if c["status"] == vf.FAIL]
    assert res.summary[vf.FAIL] == 0
    assert {c["id"] for c in res.claims if c["status"] == vf.MISMATCH} == set(vf.KNOWN)
    for cid in ("A1.size_table.dmodel_anisotropy", "A1.size_table.size_rdm_std", "S3.1.within_family.qwen",
                "S3.4.llama32_i_vs_llama31_i", "S4.2.cos_mean", "S4.3.decomposition.Llama-3.1-8B-Instruct.L3_C_vs_D",
                "S2.7.mti.Qwen2.5-1.5B-Instruct.B", "A1.released_metadata.row09", "ref.released.sha256"):
        assert claims[cid]["status"] == vf.PASS, claims[cid]
    assert claims["S3.1.within_family.mistral"]["got"] == 0.8721
    assert claims["A.4.n12_mistral_base_lineage"]["got"] == "v0.1"
    assert claims["A1.row01.run"]["kind"] == vf.NEEDS_RUN and claims["A1.row01.run"]["status"] == vf.NOT_RUN
    assert claims["A1.row01.run"]["command"] == "invoke extract --model Qwen/Qwen2.5-1.5B --dtype fp16"
    assert claims["S3.1.within_family.mistral.run"]["status"] == vf.NOT_RUN
    assert claims["S4.2.equivalence.run"]["command"].startswith("invoke equivalence --model meta-llama/Llama-3.2-3B-Instruct")
    assert [r["status"] for r in res.integrity] == ["OK", "NOT RUN"]


@pytest.mark.parametrize("tamper,status", [
    ("flip", cs.MODIFIED), ("delete", cs.MISSING), ("add", cs.UNEXPECTED), ("swap", cs.SWAPPED)])
def test_tampering_exits_2_and_names_the_path(tree, tamper, status):
    a = "artifacts/reference/released/paper5/analysis/finding8_3layer_output/finding8_3layer_results.json"
    b = "artifacts/reference/released/paper5/data/mti/compliance_b/compliance_b_qwen2.5_1.5b.json"
    pa, pb = tree / a, tree / b
    if tamper == "flip":
        data = bytearray(pa.read_bytes())
        data[len(data) // 2] ^= 0x20
        pa.write_bytes(bytes(data))
        paths = {a}
    elif tamper == "delete":
        pa.unlink()
        paths = {a}
    elif tamper == "add":
        (tree / "artifacts/reference/notes.txt").write_text("extra")
        paths = {"artifacts/reference/notes.txt"}
    else:
        da, db = pa.read_bytes(), pb.read_bytes()
        pa.write_bytes(db)
        pb.write_bytes(da)
        paths = {a, b}
    res = vf.run_verify(tree, write=False)  # must not crash on broken inputs either
    assert res.exit_code == 2
    problems = {r["path"]: r["status"] for r in res.integrity if r["path"]}
    assert problems == {p: status for p in paths}


def test_changed_table_a1_number_fails_size_claim_exit_1(tree):
    def bump(n):
        n["A1.row10"]["value"]["anisotropy"] = 0.95  # Mistral-7B-Instruct-v0.3: was 0.491
    _edit_paper(tree, bump)
    assert vf.run_verify(tree, write=False).exit_code == 2  # the manifest sees it first
    cs.write_manifest(tree, "reference")
    res = vf.run_verify(tree, write=False)
    claims = _by_id(res)
    assert res.exit_code == 1
    assert claims["A1.size_table.dmodel_anisotropy"]["status"] == vf.FAIL
    assert claims["A1.size_table.size_anisotropy"]["status"] == vf.FAIL
    assert claims["S2.5.anisotropy_range"]["status"] == vf.FAIL


def test_size_table_p_value_is_checked_at_its_printed_precision(tree):
    """Printed 0.0001 means +-5e-5: Table A1 gives 1.47e-4 (passes); a paper printing 0.0002 would not."""
    c = _by_id(vf.run_verify(tree, write=False))["A1.size_table.dmodel_anisotropy"]
    assert c["status"] == vf.PASS and c["got"]["p"] == 0.000147 and "p 0.0001" in c["note"]

    def printed_p(n):
        n["S3.5.size_table.dmodel_anisotropy"]["printed"] = "0.882 | 0.0002"
    _edit_paper(tree, printed_p)
    cs.write_manifest(tree, "reference")
    res = vf.run_verify(tree, write=False)
    assert _by_id(res)["A1.size_table.dmodel_anisotropy"]["status"] == vf.FAIL and res.exit_code == 1
    assert _by_id(res)["S3.5.released.dmodel_anisotropy"]["status"] == vf.FAIL  # released p is 0.0001 too


def test_half_unit_of_the_printed_digit():
    from analysis.verify_model import at_printed, half_unit

    assert half_unit("0.0001") == pytest.approx(5e-5) and half_unit("0.11") == pytest.approx(5e-3)
    assert half_unit("1.1e-4") == pytest.approx(5e-6) and half_unit("~1.9") == pytest.approx(0.05)
    assert at_printed(1.47e-4, "0.0001") and not at_printed(1.51e-4, "0.0001")
    assert at_printed(-0.88199, "-0.882") and not at_printed(-0.8814, "-0.882")


def test_claims_file_reads_as_a_table_and_every_row_builds():
    """analysis/claims.csv: one row per claim (or per-run template), every check named exists, every
    derived claim's tolerance says why."""
    import csv

    from analysis.verify_release import CHECKS
    from analysis.verify_runs import BUILDERS

    with open(vf.CLAIMS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "kind", "check", "args", "expected", "tolerance", "why", "source", "statement",
                             "finding"]
    assert all(r["check"] in CHECKS or r["check"] in BUILDERS for r in rows)
    assert all(r["why"] and r["source"] and r["statement"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["id"] for r in rows if r["finding"]} == set(vf.KNOWN) and len(vf.KNOWN) == 10


def test_unregistered_release_disagreement_fails(tree):
    p = tree / "artifacts/reference/released/paper5/analysis/h2_pilot/cross_backend_test.json"
    p.write_text(p.read_text().replace('"cosine_mean": 0.999998', '"cosine_mean": 0.99'))
    cs.write_manifest(tree, "reference")
    res = vf.run_verify(tree, write=False)
    claims = _by_id(res)
    assert claims["S4.2.cos_mean"]["status"] == vf.FAIL
    assert claims["ref.released.sha256"]["status"] == vf.FAIL  # no longer the authors' bytes
    assert res.exit_code == 1


def test_registered_mismatch_that_disappears_fails(tree):
    def fix(n):
        n["S3.1.within_family.mistral"]["value"] = 0.872
    _edit_paper(tree, fix)
    cs.write_manifest(tree, "reference")
    claims = _by_id(vf.run_verify(tree, write=False))
    assert claims["S3.1.within_family.mistral"]["status"] == vf.FAIL
    assert "no longer observed" in claims["S3.1.within_family.mistral"]["note"]


def test_outputs_written_atomically_and_markdown(tree, capsys):
    code = vf.main(json_only=True, root=tree)
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["exit_code"] == 0 and out["schema"] == vf.SCHEMA
    vdir = tree / "artifacts/verify"
    assert sorted(p.name for p in vdir.iterdir()) == ["verify.json", "verify.md"]  # no temp files left
    saved = json.loads((vdir / "verify.json").read_text())
    assert saved["summary"] == out["summary"] and "env" in saved
    md = (vdir / "verify.md").read_text()
    assert md.startswith("## Verification")
    assert "MISMATCH-IN-RELEASE" in md and "`invoke reproduce --models paper --dtype fp16`" in md
    assert "### Where the authors' released files disagree with the paper" in md
    assert vf.markdown_section(vf.run_verify(tree, write=False)).count("| `S3.1.within_family.mistral` |") == 1


# ---- run claims (synthetic run artifacts: metadata.json only is read) ------------------------------

def _run(root, hub, dtype="fp16", backend="tl", best=11, n_layers=28, aniso=0.627, std=0.103, seed=0, nan_from=None):
    d = synthetic_runs.comprehension(root, hub, dtype=dtype, backend=backend, best=best, n_layers=n_layers,
                                     aniso=aniso, std=std, seed=seed, nan_from=nan_from)
    return d, json.loads((d / "metadata.json").read_text())["rdm"]


def test_run_claims_paper_and_embedded(tree):
    tl, _ = _run(tree, "meta-llama/Llama-3.2-3B-Instruct")
    _run(tree, "HuggingFaceTB/SmolLM2-135M-Instruct", dtype="fp32", best=23, n_layers=30, aniso=0.9, std=0.2)
    synthetic_runs.equivalence(tree, tl)
    res = vf.run_verify(tree, write=False)
    claims = _by_id(res)
    assert res.summary[vf.FAIL] == 0, [c for c in res.claims if c["status"] == vf.FAIL]
    row = claims["A1.row08.run.comprehension-fp16-tl"]
    assert row["status"] == vf.PASS and row["got"]["anisotropy"] == 0.627 and row["got"]["rdm_std"] == 0.103
    assert "A1.row08.run" not in claims and "A1.row08.run.comprehension-fp16-hf" not in claims  # one run per row
    assert claims["S4.2.equivalence.run"]["status"] == vf.PASS
    assert claims["run.meta-llama_Llama-3.2-3B-Instruct.equivalence"]["status"] == vf.PASS
    assert claims["run.meta-llama_Llama-3.2-3B-Instruct/comprehension-fp16-hf.values"]["status"] == vf.PASS
    emb = [c for c in res.claims if "SmolLM2-135M" in c["id"]]
    assert [c["id"].rsplit(".", 1)[1] for c in emb] == ["values"]  # never vs the paper
    assert emb[0]["status"] == vf.PASS
    # runs without a runs manifest: nothing vouches for them, so integrity fails until one is written
    assert [r["status"] for r in res.integrity] == ["OK", "FAIL"] and res.exit_code == 2
    cs.write_all(tree)
    assert vf.run_verify(tree, write=False).exit_code == 0


def test_run_claim_tolerances(tree):
    d, _ = _run(tree, "meta-llama/Llama-3.2-3B-Instruct", best=12, aniso=0.635)  # off by one layer: flagged
    synthetic_runs.equivalence(tree, d)
    cs.write_all(tree)
    c = _by_id(vf.run_verify(tree, write=False))["A1.row08.run.comprehension-fp16-tl"]
    assert c["status"] == vf.PASS and "FLAGGED" in c["note"]
    far, _ = _run(tree, "meta-llama/Llama-3.2-3B", best=11, aniso=0.649 + 0.011, std=0.104)  # just outside +-0.01
    synthetic_runs.equivalence(tree, far)
    cs.write_all(tree, accept_changes=True)
    res = vf.run_verify(tree, write=False)
    c = _by_id(res)["A1.row07.run.comprehension-fp16-tl"]
    assert c["status"] == vf.FAIL and c["note"] == "ran, disagrees: anisotropy" and res.exit_code == 1


def test_edited_run_value_fails_even_when_restamped(tree):
    """A number edited in metadata.json and re-stamped into the manifest disagrees with the saved tensors."""
    d, _ = _run(tree, "meta-llama/Llama-3.2-3B-Instruct")
    synthetic_runs.equivalence(tree, d)
    cs.write_all(tree)
    assert vf.run_verify(tree, write=False).exit_code == 0
    synthetic_runs.edit_json(d / "metadata.json", lambda m: m["descriptors"]["best"].update(anisotropy=0.6275))
    cs.write_all(tree, accept_changes=True)
    res = vf.run_verify(tree, write=False)
    claims = _by_id(res)
    values = claims["run.meta-llama_Llama-3.2-3B-Instruct/comprehension-fp16-tl.values"]
    assert values["status"] == vf.FAIL and "descriptors.best.anisotropy: stored 0.6275, tensors give 0.627" in values["note"]
    assert claims["A1.row08.run.comprehension-fp16-tl"]["status"] == vf.FAIL and res.exit_code == 1


def test_wrong_backend_or_missing_equivalence_cannot_pass(tree):
    """Llama-3.2-3B-I is a TL row of Table A1: a run on HF hooks, or one without the equivalence check, fails
    even with the paper's values."""
    hf, _ = _run(tree, "meta-llama/Llama-3.2-3B-Instruct", backend="hf")
    c = _by_id(vf.run_verify(tree, write=False))["A1.row08.run.comprehension-fp16-hf"]
    assert c["status"] == vf.FAIL and c["got"]["anisotropy"] == 0.627
    assert "ran on hf, Table A1 row 8 ran on TL" in c["note"] and "equivalence did not run" in c["note"]
    tl, _ = _run(tree, "meta-llama/Llama-3.2-3B-Instruct", backend="tl", seed=3)
    c = _by_id(vf.run_verify(tree, write=False))["A1.row08.run.comprehension-fp16-tl"]
    assert c["status"] == vf.FAIL and c["note"].startswith("ran, disagrees: equivalence did not run")
    # Mistral-7B-I is an HF row (TransformerLens cannot load it): HF hooks and no equivalence is its method
    _run(tree, "mistralai/Mistral-7B-Instruct-v0.3", backend="hf", best=13, n_layers=32, aniso=0.491, std=0.093)
    assert _by_id(vf.run_verify(tree, write=False))["A1.row10.run.comprehension-fp16-hf"]["status"] == vf.PASS


def test_non_fp16_paper_run_is_values_only(tree):
    _run(tree, "meta-llama/Llama-3.2-3B-Instruct", dtype="fp32", aniso=0.9)
    claims = _by_id(vf.run_verify(tree, write=False))
    assert claims["A1.row08.run"]["status"] == vf.NOT_RUN
    assert not any(k.startswith("A1.row08.run.") for k in claims)
    assert claims["run.meta-llama_Llama-3.2-3B-Instruct/comprehension-fp32-tl.values"]["status"] == vf.PASS


def test_rsa_claim_from_runs(tree):
    _, ra = _run(tree, "Qwen/Qwen2.5-1.5B-Instruct", best=15, aniso=0.848, std=0.130, seed=1)
    _, rb = _run(tree, "meta-llama/Llama-3.2-3B-Instruct", seed=2)
    c = _by_id(vf.run_verify(tree, write=False))["S3.2.qwen_i_vs_llama32_i.spearman.run"]
    iu = np.triu_indices(21, k=1)
    rho = spearmanr(np.array(ra)[iu], np.array(rb)[iu]).statistic
    assert c["kind"] == vf.RUN and c["got"] == round(rho, 4)
    assert c["tolerance"] == "0.02" and abs(rho - 0.813) > 0.02  # random RDMs: far from the paper's 0.813
    assert c["status"] == vf.FAIL and c["note"].startswith("ran, disagrees: ")
    assert "meta-llama/Llama-3.2-3B-Instruct: equivalence did not run" in c["note"]


def _decomposition(tree, hub, **a_kwargs):
    from analysis.decomposition import decomposition_from_runs
    from analysis.runs import config_for_protocol

    synthetic_runs.comprehension(tree, hub, **a_kwargs)
    synthetic_runs.generation(tree, hub, "loose", "fp16", seed=1)
    synthetic_runs.generation(tree, hub, "protocol_matched", "fp16", seed=2)
    synthetic_runs.generation(tree, hub, "protocol_matched", "int8", seed=3)
    out = decomposition_from_runs(resolve(hub).slug, root=tree / "artifacts", config=config_for_protocol())
    return tree / "artifacts/runs" / resolve(hub).slug / "decomposition.json", out


def test_edited_decomposition_restamped_fails_verify(tree):
    """Issue 24's done-when: decomposition values edited and re-stamped with --accept-changes -> exit 1."""
    path, out = _decomposition(tree, "HuggingFaceTB/SmolLM2-135M-Instruct", dtype="fp32", best=23, n_layers=30,
                               aniso=0.9, std=0.2)
    cs.write_all(tree)
    res = vf.run_verify(tree, write=False)
    c = _by_id(res)["run.HuggingFaceTB_SmolLM2-135M-Instruct.decomposition"]
    assert res.exit_code == 0 and c["status"] == vf.PASS
    assert c["got"]["L3_C_vs_D"] == round(out["layers"]["L3_C_vs_D"]["rho"], 4)
    synthetic_runs.edit_json(path, lambda d: d["layers"]["L3_C_vs_D"].update(rho=d["layers"]["L3_C_vs_D"]["rho"] + 0.01))
    with pytest.raises(cs.ManifestMismatch):
        cs.write_all(tree)  # refused without --accept-changes
    cs.write_all(tree, accept_changes=True)
    res = vf.run_verify(tree, write=False)
    c = _by_id(res)["run.HuggingFaceTB_SmolLM2-135M-Instruct.decomposition"]
    assert res.exit_code == 1 and c["status"] == vf.FAIL and c["note"].startswith("L3_C_vs_D.rho: stored")


def test_paper_decomposition_judged_on_values_and_direction(tree, monkeypatch):
    from analysis import verify_runs

    path, out = _decomposition(tree, "mistralai/Mistral-7B-Instruct-v0.3", backend="hf", best=13, n_layers=32,
                               aniso=0.491, std=0.093)
    cid = "S4.3.decomposition.Mistral-7B-Instruct-v0.3.run"
    c = _by_id(vf.run_verify(tree, write=False))[cid]
    assert c["kind"] == vf.RUN and c["status"] == vf.FAIL and c["note"] == "ran, disagrees: L3_C_vs_D -0.032 vs 0.215; L4_A_vs_D -0.011 vs 0.409"
    # the paper's values (recomputation stubbed: the synthetic runs cannot give them) pass; the opposite direction fails
    monkeypatch.setattr(verify_runs, "decomposition_values", lambda runs_root, d: ({}, []))
    paper = {"L1_A_vs_C": 0.091, "L2_B_vs_C": 0.019, "L3_C_vs_D": 0.215, "L4_A_vs_D": 0.409}
    synthetic_runs.edit_json(path, lambda d: [d["layers"][k].update(rho=v) for k, v in paper.items()])
    c = _by_id(vf.run_verify(tree, write=False))[cid]
    assert c["status"] == vf.PASS and c["got"]["direction"] == "over-estimates", c["note"]
    near = dict(paper, L3_C_vs_D=0.314, L4_A_vs_D=0.31)  # each within 0.10, but L4 < L3: the argument flips
    synthetic_runs.edit_json(path, lambda d: [d["layers"][k].update(rho=v) for k, v in near.items()])
    c = _by_id(vf.run_verify(tree, write=False))[cid]
    assert c["status"] == vf.FAIL and c["note"] == "ran, disagrees: L4 vs L3 under-estimates, the paper over-estimates"


def test_claims_pick_the_shipped_set_unless_asked_and_name_their_runs(tree):
    """Issue 21: a paper model extracted on two stimulus sets; the run claims read the shipped set's run
    (or the asked set's) and say which runs they read."""
    runs = {}
    for hub, seed in (("Qwen/Qwen2.5-1.5B-Instruct", 1), ("meta-llama/Llama-3.2-3B-Instruct", 2)):
        d, _ = _run(tree, hub, best=15 if "Qwen" in hub else 11, seed=seed + 10)
        theirs = d.with_name(d.name + "-stim12345678")
        d.rename(theirs)
        meta = json.loads((theirs / "metadata.json").read_text())
        meta["stimuli"] = {"default": False, "set": "authors", "sha256": "12345678" + "0" * 56}
        (theirs / "metadata.json").write_text(json.dumps(meta))
        runs[hub, "authors"] = theirs
        runs[hub, "emogeo"] = _run(tree, hub, best=15 if "Qwen" in hub else 11, seed=seed)[0]  # ours
    cid = "S3.2.qwen_i_vs_llama32_i.spearman.run"
    for stimuli_set in (None, "authors"):
        res = vf.run_verify(tree, write=False, stimuli_set=stimuli_set)
        c = _by_id(res)[cid]
        want = [f"{runs[h, stimuli_set or 'emogeo'].parent.name}/{runs[h, stimuli_set or 'emogeo'].name}"
                for h in ("Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-3B-Instruct")]
        assert c["runs"] == want
        md = vf.markdown_section(res)
        assert "### Runs the claims read" in md and f"stimulus set '{stimuli_set or 'emogeo'}' first" in md
        assert f"| `{want[0]}` |" in md and cid in md.split("### Runs the claims read")[1]
    ours = _by_id(vf.run_verify(tree, write=False))[cid]["got"]
    assert ours != _by_id(vf.run_verify(tree, write=False, stimuli_set="authors"))[cid]["got"]


def test_steering_regime_claims_release_and_runs(tmp_path):
    """The released regimes follow from the released samples under the paper's rule; a paper-protocol steering
    run of a paper model whose regime disagrees with the paper's fails its claim; another protocol's is not judged."""
    from analysis.verify import FAIL, PASS, Ctx, claims_registry, evaluate

    root = tmp_path / "repo"
    shutil.copytree(REPO / "artifacts" / "reference", root / "artifacts" / "reference")
    ctx = Ctx(root)
    claims = {c.id: c for c in claims_registry(root)}
    release = [c for i, c in claims.items() if i.startswith("S2.5.steering_regime.release.")]
    assert len(release) == 7 and all(evaluate(c, ctx)["status"] == PASS for c in release)
    assert evaluate(claims["S3.3.steering_regime.gemma_pt.release"], ctx)["status"] == PASS
    assert claims["S2.5.steering_regime.run.google_gemma-3-1b-it"].kind == "needs-run"  # printed, not released

    def steering_run(name, regime, applied):
        d = root / "artifacts" / "runs" / "google_gemma-3-1b-pt" / name
        d.mkdir(parents=True)
        (d / "metadata.json").write_text(json.dumps({
            "kind": "steering", "model": {"hub_id": "google/gemma-3-1b-pt"}, "backend": "tl", "regime": regime,
            "protocol": {"applied": applied}}))

    on = {"steer_best_vector_every_layer": True, "steer_live_norm_all_positions": True, "steer_to_tokens_20": True,
          "steer_regime_first200_whitespace": True}
    steering_run("steering", "surgical", on)  # the paper says explosive
    steering_run("steering-corrected", "surgical", {k: False for k in on})
    ctx = Ctx(root)
    claims = {c.id: c for c in claims_registry(root)}
    run = evaluate(claims["S2.5.steering_regime.run.google_gemma-3-1b-pt/steering"], ctx)
    assert run["status"] == FAIL and run["got"] == "surgical" and run["expected"] == "explosive"
    assert not any("steering-corrected" in i for i in claims)  # corrected's procedure is not the paper's
    (root / "artifacts" / "runs" / "google_gemma-3-1b-pt" / "steering" / "metadata.json").write_text(json.dumps({
        "kind": "steering", "model": {"hub_id": "google/gemma-3-1b-pt"}, "regime": "explosive",
        "protocol": {"applied": on}}))
    claims = {c.id: c for c in claims_registry(root)}
    assert evaluate(claims["S2.5.steering_regime.run.google_gemma-3-1b-pt/steering"], Ctx(root))["status"] == PASS


def test_verify_refuses_to_check_another_directory_than_the_runs(tree, monkeypatch, capsys):
    """Runs written under $EMOGEO_ARTIFACTS elsewhere are not what root/artifacts holds: exit 2, one line, instead
    of a verify (and a report) that passes on the wrong directory."""
    from emogeo.pipeline import _closing_stages

    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tree / "elsewhere"))
    assert vf.main(root=tree) == 2
    err = capsys.readouterr().err
    assert "EMOGEO_ARTIFACTS=" in err and "elsewhere" in err and len(err.strip().splitlines()) == 1
    stages = dict(_closing_stages())
    assert stages["verify"]()[0] is None and "outside the repository's artifacts/" in stages["verify"]()[1]
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tree / "artifacts"))
    assert vf.main(root=tree) in (0, 1)  # the same directory: verified
