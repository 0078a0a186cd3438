"""Sub-parameter ablation: one flip per sub-parameter, cache reuse, and reuse == fresh computation."""
from __future__ import annotations

import json

import pytest
import torch

from repro import ablation as A
from repro import generation as G
from repro.backends import HFBackend
from repro.loading import load_model
from repro.models import resolve
from repro.tiny import build_tiny_model

EMOS = ("happy", "sad", "calm", "hostile")


@pytest.mark.parametrize("budget,gpt", [(None, None), (48, None), (32, 2)])
def test_each_flip_changes_exactly_one_subparameter(budget, gpt):
    base, flips, allf = A.ablation_configs(budget, gpt)
    assert base == G.preset("protocol_matched", budget, gpt)
    assert [n for n, _, _ in flips] == list(G.SUBPARAMETERS)  # all eight, in the paper's order
    loose = allf.to_dict()
    for name, cfg, flipped_to in flips:
        assert G.differing_subparameters(base, cfg) == [name]
        d = cfg.to_dict()
        changed = {k for k in d if d[k] != base.to_dict()[k]}
        assert changed and changed <= set(G.SUBPARAMETERS[name])  # no field outside the sub-parameter moved
        assert all(d[f] == loose[f] for f in G.SUBPARAMETERS[name])  # flipped toward loose
        fields = G.SUBPARAMETERS[name]
        assert flipped_to == (loose[fields[0]] if len(fields) == 1 else {f: loose[f] for f in fields})
    assert G.differing_subparameters(base, allf) == list(G.SUBPARAMETERS)


def test_loose_token_budget_scales_with_the_protocol_budget():
    assert A.loose_tokens(256) == 100
    assert A.loose_tokens(64) == 25
    assert A.loose_tokens(1) == 1


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "tiny_llama", hidden=64, layers=4)


def test_ablation_reuses_work_and_matches_fresh_runs(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    spec = resolve(str(tiny_dir))
    budget, gpt = 30, 2  # loose budget 12 > 10: the max_new_tokens flip reads mid-generation
    # a finished protocol_matched generation run seeds the cache: the base generates nothing new
    run = G.run_generation(spec, "protocol_matched", "fp32", max_new_tokens=budget, generations_per_template=gpt,
                           progress=False, device="cpu")
    stats = json.loads((run / "metadata.json").read_text())["generation_stats"]
    assert stats["mean_gen_len"] > 20  # long enough that truncating to the loose budget (12) matters
    path = A.run_ablation(spec, max_new_tokens=budget, generations_per_template=gpt, precision="fp32",
                          device="cpu", emotions=EMOS, progress=False)
    res = json.loads(path.read_text())
    assert path.name == "ablation.json" and res["base_preset"] == "protocol_matched"
    assert res["base"]["new_generations"] == 0 and any("reused" in n for n in res["notes"])
    rows = {r["parameter"]: r for r in res["rows"]}
    assert list(rows) == list(G.SUBPARAMETERS)
    for name in ("n_templates", "generations_per_template", "max_new_tokens", "position", "layer",
                 "vector_formula"):
        assert rows[name]["new_generations"] == 0, name  # reused the unflipped generations
    assert rows["chat_template"]["new_generations"] == len(EMOS) * 5 + 10
    assert rows["decoding"]["new_generations"] == len(EMOS) * 5 * gpt + 10
    assert rows["generations_per_template"]["rdm_spearman"] > 0.9999  # greedy repeats are identical
    for r in res["rows"]:
        assert -1.0 <= r["rdm_spearman"] <= 1.0 and len(r["rdm"]) == len(EMOS)
    assert rows["position"]["rdm_spearman"] < 0.9999  # a real flip changes the geometry
    assert rows["layer"]["layer"] != res["base"]["layer"] or "middle" in rows["layer"]["layer_note"]

    # reuse (truncated generations, subset prompts) == computing the flipped config from scratch
    lm = load_model(spec, "fp32", "cpu")
    _, flips, _ = A.ablation_configs(budget, gpt)
    for name, cfg, _ in flips:
        if name not in ("max_new_tokens", "n_templates"):
            continue
        fresh = G.collect(lm, HFBackend(lm), cfg, G.plan(cfg, EMOS), G.Caches(), 8, True)
        fin = G.finalize(cfg, fresh, lm.n_layers, spec.slug, EMOS)
        assert torch.allclose(fin["rdm"], torch.tensor(rows[name]["rdm"]), atol=1e-4), name

    # same config again: skipped without loading the model
    monkeypatch.setattr("repro.loading.load_model", lambda *a, **k: pytest.fail("should have skipped"))
    assert A.run_ablation(spec, max_new_tokens=budget, generations_per_template=gpt, precision="fp32",
                          device="cpu", emotions=EMOS, progress=False) == path
