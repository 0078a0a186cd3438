"""Generation-mode extraction: presets, dedupe == naive loop, per-sample seeds, quantisation, resume."""
from __future__ import annotations

import json
import re
import math

import pytest
import torch

from repro import artifacts
from repro import generation as G
from repro.backends import HFBackend
from repro.loading import load_model
from repro.models import resolve
from repro.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "tiny_llama", hidden=64, layers=4)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(resolve(str(tiny_dir)), "fp32", "cpu")


# ------------------------------------------------------------------------------------------ presets
def test_presets_match_the_paper_and_differ_in_all_eight():
    pm, lo = G.PRESETS["protocol_matched"], G.PRESETS["loose"]
    assert (pm.n_templates, pm.generations_per_template, pm.do_sample, pm.max_new_tokens, pm.position,
            pm.layer, pm.chat_template, pm.vector_formula, pm.n_neutral) == \
        (5, 10, False, 256, "mid", "middle", True, "neutral_unit", 10)
    assert (lo.do_sample, lo.temperature, lo.top_p, lo.max_new_tokens, lo.position, lo.layer,
            lo.chat_template, lo.vector_formula) == (True, 0.7, 0.9, 100, "last", "best", False, "global_mean")
    assert G.differing_subparameters(pm, lo) == list(G.SUBPARAMETERS)
    assert G.preset("protocol_matched", max_new_tokens=32).max_new_tokens == 32
    assert G.naive_count(pm) == 20 * 5 * 10 + 10
    # greedy: one distinct item per (emotion, template), weighted by the 10 repeats
    units = G.plan(pm)
    assert len(units) == 21 and len(units["happy"]) == 5 and {it.weight for it in units["happy"]} == {10}
    assert len(G.plan(lo)) == 20 and len(G.plan(lo.replace(generations_per_template=3))["sad"]) == 3
    with pytest.raises(ValueError):
        pm.replace(position="first")


def test_mid_position_rule():
    assert G.positions_for(20, 30) == {"mid": 35, "last": 49}
    assert G.positions_for(20, 10)["mid"] == 19  # <= 10 generated tokens: last prompt token (the fork's rule)
    assert G.positions_for(20, 11)["mid"] == 25


def test_vector_formulas():
    em = torch.tensor([[3.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    nm = torch.tensor([1.0, 1.0])
    v = G.emotion_vectors(em, nm, "neutral_unit")
    assert torch.allclose(v.norm(dim=-1)[:2], torch.ones(2))
    assert torch.allclose(v[0], torch.tensor([1.0, -0.5]) / math.sqrt(1.25))
    g = G.emotion_vectors(em, None, "global_mean")
    assert torch.allclose(g.sum(0), torch.zeros(2), atol=1e-6)


# ----------------------------------------------------------------------------- dedupe == naive loop
def _naive(lm, prompt: str, n: int, chat: bool):
    """The fork's loop body: one prompt, batch 1, greedy generate, full forward with hidden states."""
    ids = torch.tensor([G.render(lm.tokenizer, prompt, chat)])
    out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                            do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)[0]
    gen = out[ids.shape[1]:].tolist()
    eos = G.eos_ids(lm)
    cut = next((k + 1 for k, t in enumerate(gen) if t in eos), len(gen))
    full = out[:ids.shape[1] + cut]
    pos = G.positions_for(ids.shape[1], cut)
    with torch.inference_mode():
        hs = lm.model(full[None], output_hidden_states=True).hidden_states
    # hidden_states[N + 1] = output of block N, except the last entry, which carries the final norm
    # (the project reads raw block outputs at every layer): compare layers 0 .. L-2.
    acts = {k: torch.stack([h[0, p] for h in hs[1:-1]]) for k, p in pos.items()}  # [L-1, d]
    return gen[:cut], acts


def test_dedupe_equals_naive_loop(tiny):
    cfg = G.PROTOCOL_MATCHED.replace(max_new_tokens=14, generations_per_template=3)
    units = G.plan(cfg, emotions=("happy", "sad"))
    units["neutral"] = units["neutral"][:3]
    # one unit with unequal repeat weights, so the weighting itself is exercised
    units["mixed"] = [G.Item("mixed", "Tell me about a kite.", 0, 0, 3),
                      G.Item("mixed", "Describe a quiet harbour at night.", 1, 0, 1)]
    caches = G.Caches()
    res = G.collect(tiny, HFBackend(tiny), cfg, units, caches, batch_size=4, chat=True)
    assert caches.generated == sum(len(v) for v in units.values())  # each distinct prompt generated once
    for u, items in units.items():
        acts = {"mid": [], "last": []}
        for it in items:
            runs = [_naive(tiny, it.prompt, cfg.max_new_tokens, True) for _ in range(min(it.weight, 2))]
            assert runs[0][0] == runs[-1][0]  # greedy repeats are identical: the premise of the dedupe
            for j in range(it.weight):  # the naive loop: every repeat enters the mean
                for k in acts:
                    acts[k].append(runs[min(j, len(runs) - 1)][1][k])
            rec = next(r for r in res[u]["records"] if r["prompt"] == it.prompt)
            assert rec["generated_ids"] == runs[0][0]
        for k in ("mid", "last"):
            naive = torch.stack(acts[k]).mean(0)
            diff = (res[u][k][:-1] - naive).abs().max()
            assert torch.allclose(res[u][k][:-1], naive, atol=2e-5, rtol=1e-4), (u, k, diff)
    # and the unweighted mean (what a dedupe that forgot the weights would give) is measurably different
    unweighted = torch.stack([caches.act[(tuple(G.render(tiny.tokenizer, it.prompt, True)),
                                          tuple(r["generated_ids"]))][0]
                              for it, r in zip(units["mixed"], res["mixed"]["records"])]).mean(0)
    assert (unweighted - res["mixed"]["mid"]).abs().max() > 1e-3


def test_read_positions_matches_hfbackend(tiny):
    be = HFBackend(tiny)
    seqs = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    a = G.read_positions(be, seqs, [[5, 2], [2, 0]], tiny.tokenizer.pad_token_id)  # [B, P, L, d]
    ids, mask = G._pad_left(seqs, tiny.tokenizer.pad_token_id)
    ref = be.residuals(ids, mask, torch.tensor([5, 5]), layers=None)  # last token of each, padded coords
    assert torch.allclose(a[:, 0].transpose(0, 1), ref, atol=1e-5)


# ------------------------------------------------------------------------------------------ sampling
def test_sampler_matches_transformers_warpers():
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    scores = torch.randn(6, 500) * 3
    ref = TopPLogitsWarper(0.9)(None, TopKLogitsWarper(50)(None, TemperatureLogitsWarper(0.7)(None, scores)))
    kept_ref = torch.isfinite(ref)
    s = G.PerRowSampler([1, 2, 3, 4, 5, 6], 0.7, 0.9, 50)
    for _ in range(30):  # every draw lies in transformers' kept set
        out = s(None, scores)
        chosen = out.argmax(-1)
        assert (torch.isfinite(out).sum(-1) == 1).all()
        assert kept_ref[torch.arange(6), chosen].all()


def test_sampled_generation_is_per_sample_seeded(tiny):
    cfg = G.LOOSE.replace(max_new_tokens=8, chat_template=False)
    prompts = [G.render(tiny.tokenizer, p, False) for p in ("A kite", "The harbour at night was", "Bread")]
    seeds = [11, 22, 33]
    batch = G.generate_batch(tiny, prompts, cfg, seeds=seeds)
    alone = [G.generate_batch(tiny, [p], cfg, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    assert batch == alone  # a sample does not depend on the other rows of its batch
    assert G.generate_batch(tiny, prompts[:1], cfg, seeds=[12])[0] != batch[0]  # the seed matters
    # a shorter budget is a prefix of the longer one (what the ablation's truncation reuse relies on)
    assert G.generate_batch(tiny, prompts, cfg, seeds=seeds, max_new_tokens=4) == [b[:4] for b in batch]


# -------------------------------------------------------------------------------------- quantisation
@pytest.mark.parametrize("precision,cls", [("int8", "Linear8bitLt"), ("nf4", "Linear4bit")])
def test_quantized_really_changes_activations(tiny_dir, tiny, precision, cls):
    import bitsandbytes as bnb

    q = load_model(resolve(str(tiny_dir)), precision, "cpu")
    proj = q.model.model.layers[0].mlp.down_proj
    assert isinstance(proj, getattr(bnb.nn, cls)), type(proj)
    assert q.quantized
    ids = torch.tensor([G.render(tiny.tokenizer, "Write a letter to an old friend.", True)])
    mask = torch.ones_like(ids)
    pos = torch.tensor([ids.shape[1] - 1])
    a = HFBackend(tiny).residuals(ids, mask, pos)[:, 0]
    b = HFBackend(q).residuals(ids, mask, pos)[:, 0]
    rel = float((a - b).norm() / a.norm())
    assert 1e-4 < rel < 0.5, rel


# -------------------------------------------------------------------------------------------- resume
def _small(cfg_preset="protocol_matched"):
    return G.PRESETS[cfg_preset].replace(n_templates=1, generations_per_template=2, max_new_tokens=4, n_neutral=3)


def test_resume_after_interruption(tiny_dir, tmp_path, monkeypatch):
    spec = resolve(str(tiny_dir))
    cfg = _small()
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path / "a"))
    done = []

    def crash(unit):
        done.append(unit)
        if len(done) == 7:
            raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(G, "_after_unit", crash)
    with pytest.raises(KeyboardInterrupt):
        G.run_generation(spec, "protocol_matched", "fp32", config=cfg, progress=False, device="cpu", batch_size=4)
    out = artifacts.run_dir(spec.slug, G.generation_kind("protocol_matched", "fp32", cfg))
    # the folder names what departs from the preset: budget and repeats readably, the rest by a hash
    assert re.fullmatch(r"generation-protocol_matched-fp32-tok4-rep2-cfg[0-9a-f]{8}", out.name)
    assert not (out / "metadata.json").exists()  # nothing half-written under the final name
    monkeypatch.setattr(G, "_after_unit", lambda u: None)
    G.run_generation(spec, "protocol_matched", "fp32", config=cfg, progress=False, device="cpu", batch_size=4)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["counts"]["resumed_units"] == 7
    # units: 20 emotions (1 template, greedy: 1 distinct item each) then neutral (3 topics)
    assert meta["counts"]["generated_this_session"] == 13 + 3
    assert meta["counts"]["distinct_generations"] == 23
    assert not (out.parent / (out.name + ".partial")).exists()
    vec = artifacts.load_vectors(out)["vectors"]
    # an uninterrupted run elsewhere gives the same vectors
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path / "b"))
    ref = G.run_generation(spec, "protocol_matched", "fp32", config=cfg, progress=False, device="cpu", batch_size=4)
    assert torch.allclose(vec, artifacts.load_vectors(ref)["vectors"], atol=1e-5)
    assert meta["layer"] == 2 and len(meta["rdm"]) == 20 and meta["backend"] == "hf"
    gens = json.loads((out / "generations.json").read_text())
    assert len(gens["emotions"]["happy"]) == 1 and gens["emotions"]["happy"][0]["weight"] == 2
    # a rerun with the same config is skipped without even loading the model
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path / "a"))
    monkeypatch.setattr("repro.loading.load_model", lambda *a, **k: pytest.fail("should have skipped"))
    assert G.run_generation(spec, "protocol_matched", "fp32", config=cfg, progress=False, device="cpu") == out
