"""Run-based analysis on fake run directories (docs/ARTIFACTS.md), tables with missing inputs, the
decomposition, and byte-stable figures."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analysis import decomposition as decomp
from analysis.descriptors import anisotropy, centre, cosine_matrix, mean_pairwise_cosine, rdm_std
from analysis.runs import AnalysisConfig, collect

EMO = ["afraid", "angry", "anxious", "blissful", "brooding", "calm", "desperate", "enthusiastic", "exasperated",
       "gloomy", "grateful", "guilty", "happy", "hopeful", "hostile", "loving", "nervous", "neutral", "proud",
       "reflective", "sad"]
FAST = AnalysisConfig(n_perm=500, n_boot=100, n_splits=10)

# hub id, family, variant, size (B), d_model, neutral offset scale (large -> anisotropic), own-structure noise
FAKE_MODELS = (
    ("Qwen/Qwen2.5-1.5B", "Qwen 2.5", "B", 1.5, 40, 1.0, 0.3),
    ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen 2.5", "I", 1.5, 40, 1.0, 0.3),
    ("meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2", "I", 3.0, 56, 0.7, 0.4),
    ("google/gemma-3-1b-pt", "Gemma-3", "B", 1.0, 24, 30.0, 1.5),
)


def _write_run(path: Path, tensors: dict, meta: dict) -> None:
    import torch

    from repro.artifacts import save_tensors_atomic, write_json_atomic

    path.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(path / "vectors.safetensors", {k: torch.tensor(v, dtype=torch.float32)
                                                       for k, v in tensors.items()})
    write_json_atomic(path / "metadata.json", meta)


def make_fake_runs(base: Path, generation: bool = True, extras: bool = True, seed: int = 0) -> Path:
    """artifacts/runs/<slug>/comprehension-fp32-hf/ for four models sharing one emotion geometry (+ noise),
    and the generation runs A-D of Llama-3.2-3B-Instruct with shuffled emotion orders."""
    rng = np.random.default_rng(seed)
    # the shared emotion geometry (four clusters, like valence/arousal groups), embedded isometrically per model
    proto = 2.0 * rng.normal(size=(4, 16))[np.arange(21) % 4] + rng.normal(size=(21, 16))
    runs = Path(base) / "runs"
    n_layers, per = 4, 4
    for k, (hub, fam, var, size, d, off, noise) in enumerate(FAKE_MODELS):
        w = np.linalg.qr(rng.normal(size=(d, 16)))[0].T  # [16, d], orthonormal rows
        offset = rng.normal(size=d) * off
        passage_acts, labels, ids = [], [], []
        layer_scale = [2.0, 1.0, 0.5, 1.5]  # layer 2 is the cleanest -> best layer
        means, neutral = [], []
        for layer in range(n_layers):
            em = proto @ w + noise * layer_scale[layer] * rng.normal(size=(21, d))
            acts = np.repeat(em, per, axis=0) + offset + 0.5 * rng.normal(size=(21 * per, d))
            passage_acts.append(acts)
            means.append(acts.reshape(21, per, d).mean(1))
            neutral.append(offset + 0.6 * rng.normal(size=(20, d)))
        labels = [e for e in EMO for _ in range(per)]
        ids = [f"{e}-{i}" for e in EMO for i in range(per)]
        means, neutral, passage_acts = np.stack(means), np.stack(neutral), np.stack(passage_acts)
        vectors = np.stack([centre(m) for m in means])
        sweep = [mean_pairwise_cosine(v) for v in vectors]
        best = int(np.argmin(sweep))
        aniso = [anisotropy(x) for x in neutral]
        rdm = cosine_matrix(vectors[best])
        slug = hub.replace("/", "_")
        meta = {"schema": "emogeo.comprehension/1", "kind": "comprehension",
                "model": {"alias": slug, "hub_id": hub, "family": fam, "variant": var, "size_b": size,
                          "n_layers": n_layers, "d_model": d, "source": "hub"},
                "backend": "hf", "dtype": "fp32", "precision": "fp32", "emotions": EMO, "n_layers": n_layers,
                "d_model": d, "passages": {"ids": ids, "emotions": labels}, "layer_sweep": sweep,
                "nonfinite_layers": [], "best_layer": best, "best_layer_pct": round(100 * best / n_layers, 1),
                "fragile": False, "reference_layers": {"best": best, "25": 1, "50": 2, "75": 3},
                "anisotropy": aniso,
                "descriptors": {"best": {"layer": best, "anisotropy": aniso[best], "rdm_std": rdm_std(rdm),
                                         "mean_cosine": sweep[best]}},
                "rdm": rdm.tolist(), "anisotropy_flag": aniso[best] > 0.95}
        ref = [best, 1, 2, 3]
        _write_run(runs / slug / "comprehension-fp32-hf",
                   {"vectors": vectors, "emotion_means": means, "neutral_acts": neutral,
                    "passage_acts": passage_acts[ref]}, meta)
        if hub == "meta-llama/Llama-3.2-3B-Instruct" and generation:
            _fake_generation(runs / slug, hub, vectors[best], rng)
    if extras:
        s = runs / "meta-llama_Llama-3.2-3B-Instruct"
        (s / "steering").mkdir(parents=True, exist_ok=True)
        (s / "steering" / "steering.json").write_text(json.dumps({"regime": "surgical", "metrics": {
            "coherence": 0.8, "repetition": 0.1}}))
        (s / "ablation.json").write_text(json.dumps({"rows": [{"parameter": "n_templates", "rdm_spearman": 0.41},
                                                              {"parameter": "greedy", "rdm_spearman": 0.77}]}))
        (s / "equivalence.json").write_text(json.dumps({"best": {"layer": 2, "cos_mean": 0.9999991,
                                                                 "cos_min": 0.999998, "rdm_spearman": 0.99999,
                                                                 "rel_frobenius": 2e-5, "passed": True},
                                                        "per_layer": []}))
    return runs


def _fake_generation(slug_dir: Path, hub: str, comp_vectors: np.ndarray, rng) -> None:
    idx = [k for k, e in enumerate(EMO) if e != "neutral"]
    base = comp_vectors[idx]
    d = base.shape[1]
    c = base + 1.5 * rng.normal(size=base.shape)  # C: related to A
    dq = c + 0.8 * rng.normal(size=base.shape)  # D: C with precision noise
    b = rng.normal(size=base.shape)  # B: unrelated sub-parameter setting
    for kind, vec, preset, prec in (("generation-loose-fp32", b, "loose", "fp32"),
                                    ("generation-protocol_matched-fp32", c, "protocol_matched", "fp32"),
                                    ("generation-protocol_matched-int8", dq, "protocol_matched", "int8")):
        order = rng.permutation(20)
        emotions = [EMO[idx[k]] for k in order]
        v = vec[order]
        meta = {"schema": "emogeo.generation/1", "kind": "generation", "config": {"preset": preset},
                "emotions": emotions, "layer": 2, "rdm": cosine_matrix(v).tolist(),
                "model": {"hub_id": hub, "family": "Llama 3.2", "variant": "I"}, "precision": prec, "backend": "hf"}
        _write_run(slug_dir / kind, {"vectors": v.reshape(20, d)}, meta)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    from analysis.tables import compute

    root = tmp_path_factory.mktemp("artifacts")
    make_fake_runs(root)
    return root, compute(False, root=root, config=FAST)


def test_collect_reads_every_run(fake):
    root, _ = fake
    runs = collect(root)
    assert len(runs.comprehension) == 4 and len(runs.generation) == 3
    assert {g.preset for g in runs.generation} == {"loose", "protocol_matched"}
    assert set(runs.extras["meta-llama_Llama-3.2-3B-Instruct"]) >= {"ablation", "steering", "equivalence"}
    assert [r.hub_id for r in runs.primary()][:2] == ["Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B-Instruct"]


def test_run_based_results(fake):
    root, res = fake
    rows = {r["model"]: r for r in res["table_a1"]}
    assert rows["google/gemma-3-1b-pt"]["flag"] is True
    assert rows["Qwen/Qwen2.5-1.5B"]["flag"] is False
    assert rows["Qwen/Qwen2.5-1.5B"]["split_half"] > 0.5  # structured passages: a usable noise ceiling
    assert res["rdm_of_rdms"]["flags"] == [False, False, True, False]  # Table A1 order: Gemma before Llama
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    q = pairs[("Qwen2.5-1.5B", "Qwen2.5-1.5B-I")]
    assert q["rho"] > 0.5 and q["mantel_p"] < 0.05 and q["ci_lo"] < q["rho"] < q["ci_hi"]
    assert res["within_family"][0]["family"] == "Qwen 2.5"
    assert res["mti"]["source"] == "runs" and res["mti"]["pair"] == ["Qwen2.5-1.5B-I", "Llama-3.2-3B-I"]
    assert res["size"]["runs"] is not None and res["size"]["runs"][0]["n"] == 4
    for p in res["isotropy"]["pairs"]:
        assert abs(p["normalised"] - p["raw"]) < 1e-12  # the invariance, on real RDMs
        assert p["isotropised"] is not None


def test_decomposition_from_runs(fake):
    root, res = fake
    ours = [d for d in res["decomposition"] if d["source"] == "runs"]
    assert len(ours) == 1
    d = ours[0]
    L = d["layers"]
    assert L["L1_A_vs_C"]["n_emotions"] == 20  # A has 21 (with neutral), generation 20: aligned by name
    assert L["L3_C_vs_D"]["rho"] > L["L2_B_vs_C"]["rho"]
    assert abs(L["L2_B_vs_C"]["rho"]) < 0.3
    assert d["conditions"]["D"]["precision"] == "int8" and d["conditions"]["C"]["precision"] == "fp32"
    expected = "over-estimates" if L["L4_A_vs_D"]["rho"] > L["L3_C_vs_D"]["rho"] else "under-estimates"
    assert d["reading"]["direction"] == expected
    written = json.loads((root / "runs" / "meta-llama_Llama-3.2-3B-Instruct" / "decomposition.json").read_text())
    assert written["layers"]["L3_C_vs_D"]["rho"] == pytest.approx(L["L3_C_vs_D"]["rho"])
    assert {r["source"] for r in res["decomposition"]} == {"runs", "reference"}


def test_decomposition_reading_matches_paper():
    m = decomp.reading(0.215, 0.409)
    assert m["direction"] == "over-estimates" and m["ratio"] == pytest.approx(1.90, abs=0.005)
    ll = decomp.reading(0.527, 0.325)
    assert ll["direction"] == "under-estimates" and ll["ratio"] == pytest.approx(0.62, abs=0.005)
    assert decomp.reading(None, 0.3)["direction"] == "not available"
    ref = {d["label"]: d for d in decomp.from_reference()}
    assert ref["Mistral-7B-v0.3-I"]["reading"]["direction"] == "over-estimates"
    assert ref["Llama-3.1-8B-I"]["reading"]["direction"] == "under-estimates"
    assert ref["Llama-3.1-8B-I"]["layers"]["L1_A_vs_C"]["rho"] == pytest.approx(0.355)


def test_decomposition_with_missing_conditions(tmp_path):
    make_fake_runs(tmp_path, generation=False, extras=False)
    runs = collect(tmp_path)
    out = decomp.decomposition_from_runs("meta-llama_Llama-3.2-3B-Instruct", runs, config=FAST, write=True)
    assert out["layers"]["L1_A_vs_C"]["status"] == "not run" and out["layers"]["L1_A_vs_C"]["missing"] == ["C"]
    assert out["reading"]["direction"] == "not available"
    assert not (tmp_path / "runs" / "meta-llama_Llama-3.2-3B-Instruct" / "decomposition.json").exists()


def test_bad_run_is_skipped_not_fatal(tmp_path):
    make_fake_runs(tmp_path, generation=True, extras=False)
    p = tmp_path / "runs" / "meta-llama_Llama-3.2-3B-Instruct" / "generation-loose-fp32" / "metadata.json"
    meta = json.loads(p.read_text())
    meta["emotions"][1] = meta["emotions"][0]  # duplicated label
    p.write_text(json.dumps(meta))
    runs = collect(tmp_path)
    assert len(runs.generation) == 2 and any("duplicated" in s for s in runs.skipped)


def test_tables_written_and_extras_read(fake, tmp_path):
    from analysis.tables import write_tables

    root, res = fake
    paths = write_tables(results=res, out=tmp_path / "tables")
    names = {p.name for p in paths}
    for t in ("table_a1", "rdm_of_rdms", "rsa_pairs", "size_correlations", "decomposition", "isotropy",
              "ablation", "steering", "equivalence", "mti_dissociation"):
        assert f"{t}.csv" in names and f"{t}.md" in names
    abl = (tmp_path / "tables" / "ablation.md").read_text()
    assert "n_templates" in abl and "0.410" in abl
    assert "surgical" in (tmp_path / "tables" / "steering.md").read_text()
    eq = (tmp_path / "tables" / "equivalence.csv").read_text()
    assert "meta-llama_Llama-3.2-3B-Instruct" in eq and "0.999999" in eq
    a1 = (tmp_path / "tables" / "table_a1.md").read_text()
    assert "UNRELIABLE" in a1 and "google/gemma-3-1b-pt" in a1


def test_missing_inputs_say_not_run(tmp_path):
    from analysis.tables import build_tables, compute, write_tables

    res = compute(False, root=tmp_path, config=FAST)  # no runs at all
    tables = {t.name: t for t in build_tables(res)}
    for name in ("table_a1", "rdm_of_rdms", "rsa_pairs", "isotropy", "ablation", "steering", "mti_dissociation"):
        assert tables[name].status == "not run", name
        assert "not run" in tables[name].to_markdown()
    assert tables["size_correlations"].rows  # Table A1 block still there
    assert "not run" in " ".join(tables["size_correlations"].notes)
    write_tables(results=res, out=tmp_path / "t")
    assert (tmp_path / "t" / "ablation.csv").read_text().startswith("status,reason")


def test_figures_byte_stable(fake, tmp_path):
    """Two renders of the same results are byte-identical (PNG and PDF). Every figure goes through the same
    ``save``; the three checked here cover heatmaps with hatching, the run-mode RDM pair and scatters
    (the report tests render all six)."""
    from analysis.figures import FIGURES, save

    _, res = fake
    chosen = [(n, f) for n, f in FIGURES if n.startswith(("fig1", "fig2", "fig5"))]
    a = [p for n, f in chosen for p in save(f(res), tmp_path / "a", n)]
    b = [p for n, f in chosen for p in save(f(res), tmp_path / "b", n)]
    assert len(a) == 6
    for pa, pb in zip(a, b):
        assert pa.name == pb.name
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert a[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a[1].read_bytes()[:5] == b"%PDF-"
    assert b"CreationDate" not in a[1].read_bytes() and b"matplotlib" not in a[0].read_bytes().lower()


def _rho_after_post_centring(a: dict, b: dict) -> float:
    """The paper's analysis written out independently: centre each set over all of its own emotions, keep
    the shared ones, 1 - cosine RDMs, Spearman of the upper triangles."""
    from scipy.stats import spearmanr

    def centred(s):
        m = np.mean(np.stack(list(s.values())), axis=0)
        return {e: v - m for e, v in s.items()}

    a, b = centred(a), centred(b)
    common = sorted(set(a) & set(b))

    def rdm(s):
        x = np.stack([s[e] / np.linalg.norm(s[e]) for e in common])
        return 1 - x @ x.T

    iu = np.triu_indices(len(common), k=1)
    return float(spearmanr(rdm(a)[iu], rdm(b)[iu]).statistic)


def test_decomposition_json_is_the_post_centred_recomputation(fake):
    """Issue 22: decomposition.json equals the authors' analysis recomputed from the runs' saved vectors."""
    from repro import artifacts

    root, res = fake
    slug = root / "runs" / "meta-llama_Llama-3.2-3B-Instruct"
    written = json.loads((slug / "decomposition.json").read_text())
    assert written["centring"]["mode"] == "post"
    sets = {}
    for cond, info in written["conditions"].items():
        run = root / "runs" / info["run"]
        meta = json.loads((run / "metadata.json").read_text())
        v = artifacts.load_vectors(run)["vectors"].double().numpy()
        if meta["kind"] == "comprehension":
            v = v[meta["best_layer"]]
        sets[cond] = dict(zip(meta["emotions"], v))
    for key, x, y, _ in decomp.LAYERS:
        assert written["layers"][key]["rho"] == pytest.approx(_rho_after_post_centring(sets[x], sets[y]), abs=1e-12)
    stored = decomp.decomposition_from_runs(slug.name, collect(root), config=replace(FAST, decomposition_centring="stored"),
                                          write=False)
    assert stored["centring"]["mode"] == "stored"
    assert any(abs(stored["layers"][k]["rho"] - written["layers"][k]["rho"]) > 1e-6 for k in decomp.LAYER_KEYS)


def test_post_centring_changes_rho_where_the_sets_share_an_offset():
    """Generation vectors sharing a common direction (the paper's models' have mean pairwise cosine
    0.41-0.46; these 0.97): un-centred, the offset distorts their RDM; post-centred, the structure shows."""
    from analysis.descriptors import cosine_matrix
    from analysis.rsa import RDM, compare

    rng = np.random.default_rng(3)
    emotions = tuple(f"e{i}" for i in range(20))
    structure = rng.normal(size=(20, 32))
    structure -= structure.mean(0)
    gen = structure + 0.3 * rng.normal(size=(20, 32)) + 6.0 * rng.normal(size=32)  # + a shared offset
    a = RDM(cosine_matrix(structure), emotions, "m")
    raw = compare(a, RDM(cosine_matrix(gen), emotions, "m")).spearman
    post = compare(a, RDM(cosine_matrix(decomp.post_centre(gen)), emotions, "m")).spearman
    assert post > 0.85 and raw < post - 0.15  # 0.90 vs 0.71 here
    with pytest.raises(ValueError, match="unknown decomposition centring 'none'"):
        decomp.condition_rdm(None, "none")


def test_primary_prefers_runs_of_the_asked_protocol(tmp_path):
    """Two runs of one model under two protocols: `paper` represents it unless `corrected` is asked for."""
    import shutil

    make_fake_runs(tmp_path, generation=False, extras=False)
    corrected = tmp_path / "runs" / "Qwen_Qwen2.5-1.5B" / "comprehension-fp32-hf"  # no record: switches off
    paper = corrected.with_name("comprehension-fp32-hf-q00000000")  # sorts after it by name
    shutil.copytree(corrected, paper)
    meta = json.loads((paper / "metadata.json").read_text())
    meta["protocol"] = {"name": "paper", "applied": {"hf_neutral_first10": True, "hf_last_layer_post_norm": True}}
    (paper / "metadata.json").write_text(json.dumps(meta))
    runs = collect(tmp_path)

    def used(protocol):
        return [r.kind for r in runs.primary(replace(FAST, protocol=protocol)) if r.hub_id == "Qwen/Qwen2.5-1.5B"]

    assert used("paper") == [paper.name] and used("corrected") == [corrected.name]
    rows = {r.kind: r.table_row()["protocol"] for r in runs.comprehension if r.hub_id == "Qwen/Qwen2.5-1.5B"}
    assert rows == {paper.name: "paper", corrected.name: "corrected"}


def test_protocol_effects_pair_the_paper_run_with_the_others(tmp_path):
    """Runs of one model under two protocols are set side by side in the report's protocol-effects table."""
    import shutil

    from analysis.tables import compute, table_protocol_effects

    make_fake_runs(tmp_path, generation=False, extras=False)
    corrected = tmp_path / "runs" / "Qwen_Qwen2.5-1.5B" / "comprehension-fp32-hf"  # no record: switches off
    paper = corrected.with_name("comprehension-fp32-hf-paper")
    shutil.copytree(corrected, paper)
    meta = json.loads((paper / "metadata.json").read_text())
    meta["protocol"] = {"applied": {"hf_neutral_first10": True, "hf_last_layer_post_norm": True}}
    meta["descriptors"]["best"]["anisotropy"] = 0.5
    (paper / "metadata.json").write_text(json.dumps(meta))
    res = compute(False, tmp_path, FAST)
    effects = res["protocol_effects"]
    assert len(effects) == 1  # the other three models have one run each
    e = effects[0]
    assert e["model"] == "Qwen/Qwen2.5-1.5B" and e["other_protocol"] == "corrected"
    assert e["switches_off"] == ["hf_neutral_first10", "hf_last_layer_post_norm"]
    assert e["paper"]["anisotropy"] == 0.5 and e["other"]["anisotropy"] != 0.5
    assert e["rdm_rho"] == pytest.approx(1.0)  # the same vectors: the geometry did not move
    md = table_protocol_effects(res).to_markdown()
    assert "comprehension-fp32-hf | corrected | hf_neutral_first10, hf_last_layer_post_norm" in md
    assert "| 0.5000 |" in md


def test_decomposition_reads_the_loose_run_of_the_asked_protocol(tmp_path):
    """B is the loose run of the asked protocol; the per-variant table says which runs are missing."""
    from analysis.decomposition import select_conditions
    from analysis.protocol_effects import decomposition_effects
    from analysis.runs import config_for_protocol
    from repro.protocol import resolve_protocol

    runs_dir = make_fake_runs(tmp_path, extras=False)
    slug = "meta-llama_Llama-3.2-3B-Instruct"
    old = runs_dir / slug / "generation-loose-fp32"  # no protocol record: top_k 50, a corrected run
    meta = json.loads((old / "metadata.json").read_text())
    import safetensors.numpy as stn

    d = stn.load_file(str(old / "vectors.safetensors"))["vectors"].shape[1]
    v = np.random.default_rng(5).normal(size=(20, d))  # a B unrelated to the old one
    _write_run(runs_dir / slug / "generation-loose-fp32-p", {"vectors": v},
               {**meta, "protocol": {"applied": {"loose_no_top_k_unseeded": True}}})
    runs = collect(tmp_path)
    paper = select_conditions(runs, slug, config_for_protocol(resolve_protocol("paper")))
    corrected = select_conditions(runs, slug, config_for_protocol(resolve_protocol("corrected")))
    assert paper["B"].kind == "generation-loose-fp32-p" and corrected["B"].kind == "generation-loose-fp32"
    assert paper["C"].kind == corrected["C"].kind == "generation-protocol_matched-fp32"
    rows = {r["variant"]: r for r in decomposition_effects(runs)}
    assert set(rows) >= {"paper", "corrected", "loose_no_top_k_unseeded=off", "decomposition_post_centring=off"}
    # the fake comprehension runs carry no protocol record (all switches off): HF runs of corrected only
    assert rows["paper"]["missing"] == ["A"] and rows["paper"]["layers"]["L1_A_vs_C"] is None
    assert rows["corrected"]["missing"] == [] and rows["corrected"]["layers"]["L1_A_vs_C"] is not None
    assert rows["loose_no_top_k_unseeded=off"]["B"].endswith("generation-loose-fp32")
    # L2 (B vs C) moves with B; L3 (C vs D) does not depend on the protocol's runs
    assert rows["paper"]["layers"]["L2_B_vs_C"] != rows["corrected"]["layers"]["L2_B_vs_C"]
    assert rows["paper"]["layers"]["L3_C_vs_D"] == rows["loose_no_top_k_unseeded=off"]["layers"]["L3_C_vs_D"]
    assert rows["decomposition_post_centring=off"]["centring"] == "stored"


def test_what_this_run_shows_states_findings_with_numbers(fake):
    """The report's findings section reads the runs' own numbers and says which findings they show."""
    from analysis.findings import what_this_run_shows

    _, res = fake
    text = "\n".join(what_this_run_shows(res))
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    # Qwen vs Llama-3.2 is a cross-family pair: its rho appears, rounded as printed.
    q = pairs[("Qwen2.5-1.5B-I", "Llama-3.2-3B-I")]
    assert f"Qwen2.5-1.5B-I vs Llama-3.2-3B-I rho {q['rho']:.3f}" in text
    # The fake Gemma-3-1B-pt run is above 0.95: the flag is exercised and names it.
    assert "Anisotropy flag (Section 4.1): exercised" in text and "gemma-3-1b-pt" in text.lower()
    assert "claim nothing" in text or "claims nothing" in text
    # Within-family pairs are not evidence of cross-family sharing.
    assert "Qwen2.5-1.5B vs Qwen2.5-1.5B-I" not in text
    # One model: nothing shown, and said so.
    one = dict(res, pairs=[], rdms=res["rdms"][:1])
    assert "Shared geometry across families (Section 3.1): not shown" in "\n".join(what_this_run_shows(one))
    assert what_this_run_shows(dict(res, mode="reference")) == []


def test_fig1_with_one_run_shows_the_released_matrix_labelled(tmp_path):
    """Fewer than two runs: Figure 1 is the authors' released 12x12, titled as theirs, never an empty box."""
    from analysis.figures import fig1_rdm_of_rdms
    from analysis.results import compute

    res = compute(False, root=tmp_path, config=FAST)  # no runs
    assert res["rdm_of_rdms"] is None  # nothing of theirs is passed off as a run's number
    released = res["released"]["rdm_of_rdms"]
    assert len(released["labels"]) == 12 and len(res["released"]["pairs"]) == 66
    # Figure 4's grey background: the ten released layer sweeps, the one outside Table A1 named as such.
    sweeps = res["released"]["sweeps"]
    assert len(sweeps) == 10 and [s["label"] for s in sweeps if "not in Table A1" in s["label"]] == [
        "Mistral-7B-v0.1 (not in Table A1)"]
    fig = fig1_rdm_of_rdms(res)
    title = fig.axes[0].get_title()
    assert "released matrix, NOT this run's models" in title and "12 models" in title
    assert len(fig.axes[0].get_yticklabels()) == 12
