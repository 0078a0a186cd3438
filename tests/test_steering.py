"""Steering: regime rule, text metrics, hooks on both backends, the run artifact, the missing-run error."""
from __future__ import annotations

import json

import pytest
import torch

from repro import artifacts
from repro import steering as S
from repro.backends import HFBackend, TLBackend
from repro.loading import load_model
from repro.models import resolve
from repro.stimuli import EMOTIONS
from repro.tiny import build_tiny_model


def _s(text, strength=0.02):
    return {"strength": strength, "text": text, "max_trigram_count": S.max_trigram_count(text),
            "word_count": len(S.words(text))}


def test_text_metrics():
    assert S.words("Hello, world! 123 it's") == ["hello", "world", "it", "s"]
    assert S.max_trigram_count("the cat sat the cat sat the cat sat down") == 3
    assert S.max_trigram_count("one two") == 0
    assert S.max_trigram_count("a b c d e f") == 1


FLUENT = "She took a slow breath and let the anger drain out of her shoulders."
LOOP = "and then we and then we and then we and then we"
SHORT = "?? !!"


def test_regime_rule_branches():
    assert S.classify([_s(FLUENT)] * 10)["regime"] == "surgical"
    assert S.classify([_s(LOOP)] * 6 + [_s(FLUENT)] * 4)["regime"] == "repetitive_collapse"
    assert S.classify([_s(LOOP)] * 5 + [_s(FLUENT)] * 5)["regime"] == "surgical"  # 50% is not > 50%
    assert S.classify([_s(SHORT)] * 4 + [_s(FLUENT)] * 6)["regime"] == "explosive"
    assert S.classify([_s(SHORT)] * 3 + [_s(FLUENT)] * 7)["regime"] == "surgical"  # 30% is not > 30%
    # order: repetitive collapse is checked before explosive
    both = S.classify([_s(LOOP)] * 6 + [_s(SHORT)] * 4)
    assert both["regime"] == "repetitive_collapse" and both["fraction_short"] > S.EXPLOSIVE_FRACTION
    # unsteered (strength 0) samples do not count
    assert S.classify([_s(LOOP, 0.0)] * 10 + [_s(FLUENT)] * 2)["regime"] == "surgical"
    with pytest.raises(ValueError):
        S.classify([_s(FLUENT, 0.0)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "tiny_llama", hidden=64, layers=4)
    return load_model(resolve(str(d)), "fp32", "cpu")


@pytest.mark.parametrize("backend", ["hf", "tl"])
def test_hook_changes_output_and_is_noop_at_zero(tiny, backend):
    be = HFBackend(tiny) if backend == "hf" else TLBackend(tiny)
    ids = list(tiny.tokenizer("The forecast for tomorrow says light rain")["input_ids"])
    torch.manual_seed(1)
    v = {li: torch.randn(64) for li in range(4)}
    plain = S.steer_generate(tiny, be, ids, None, 2, max_new_tokens=12)
    zero = S.steer_generate(tiny, be, ids, {li: torch.zeros(2, 64) for li in v}, 2, max_new_tokens=12)
    assert zero == plain  # strength 0: exactly the unsteered continuation
    big = S.steer_generate(tiny, be, ids, {li: torch.stack([0 * x, 40 * x]) for li, x in v.items()}, 2,
                           max_new_tokens=12)
    assert big[0] == plain[0] and big[1] != plain[1]  # only the steered row changes


def test_hf_and_tl_steer_identically(tiny):
    ids = list(tiny.tokenizer("He slammed the door and")["input_ids"])
    torch.manual_seed(2)
    deltas = {li: torch.randn(1, 64) * 2 for li in range(4)}
    assert S.steer_generate(tiny, HFBackend(tiny), ids, deltas, 1, 10) == \
        S.steer_generate(tiny, TLBackend(tiny), ids, deltas, 1, 10)


def _fake_comprehension(spec, best=1):
    d = artifacts.run_dir(spec.slug, "comprehension-fp32-hf")
    torch.manual_seed(0)
    artifacts.save_tensors_atomic(d / "vectors.safetensors", {"vectors": torch.randn(4, 21, 64)})
    artifacts.write_json_atomic(d / "metadata.json", {"emotions": list(EMOTIONS), "best_layer": best,
                                                      "n_layers": 4, "config_hash": "test"})


def test_run_steering_artifact(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    spec = tiny.spec
    with pytest.raises(S.SteeringError, match="invoke extract"):
        S.run_steering(spec, backend="hf", precision="fp32", device="cpu", progress=False)
    _fake_comprehension(spec)
    out = S.run_steering(spec, backend="hf", precision="fp32", device="cpu", progress=False, max_new_tokens=16)
    res = json.loads((out / "steering.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    assert out == artifacts.run_dir(spec.slug, "steering")
    assert res["regime"] in ("surgical", "repetitive_collapse", "explosive") and res["rule"].startswith(S.RULE)
    assert len(res["samples"]) == 2 * 6 and res["metrics"]["n_steered"] == 10
    assert res["regime"] == S.classify(res["samples"])["regime"]
    for s in res["samples"]:
        if s["strength"] == 0:
            assert s["perplexity_ratio"] == pytest.approx(1.0)
        assert s["perplexity"] is None or s["perplexity"] > 1
    assert meta["layers"] == [0, 1, 2, 3] and meta["backend"] == "hf"
    best = S.run_steering(spec, layers="best", backend="hf", precision="fp32", device="cpu", progress=False,
                          max_new_tokens=16)
    assert json.loads((best / "metadata.json").read_text())["layers"] == [1]


# ------------------------------------------------------------------------- --protocol paper (the authors')
def test_authors_measures_read_200_characters_split_on_whitespace():
    text = "I... I... I... can't stop. " * 3 + "x" * 200
    ours, theirs = S.measures(text, authors_rule=False), S.measures(text, authors_rule=True)
    assert theirs["judged_text"] == text[:200] and ours["judged_text"] == text
    # whitespace words keep "I..." and "can't" whole: "i... i... i..." repeats 3 times in the first 200 chars
    assert theirs["max_trigram_count"] == 3 and theirs["word_count"] == len(text[:200].split())
    assert ours["word_count"] == len(S.words(text))
    # a 3-gram whose repeats sit past character 200 counts for emogeo only
    late = "x" * 200 + " and then we" * 3
    assert S.measures(late, True)["max_trigram_count"] < 3 <= S.measures(late, False)["max_trigram_count"]


def _authors_loop(tiny, be, prompt_ids, direction, strength, n_new, eos_id):
    """A plain batch-of-one reading of the authors' procedure (the test's oracle, written from its description):
    every token, the whole sequence again; every layer's resid_post += u * strength * mean norm over positions."""
    ids = torch.tensor([prompt_ids])

    def edit(value, li):
        return value + direction.to(value.dtype) * strength * value.norm(dim=-1, keepdim=True).mean()

    forward = S._hooked_forward(tiny, be, list(range(tiny.n_layers)), edit)
    for _ in range(n_new):
        nxt = forward(ids)[0, -1].argmax()
        ids = torch.cat([ids, nxt.view(1, 1).cpu()], dim=1)
        if int(nxt) == eos_id:
            break
    return ids[0, len(prompt_ids):].tolist()


@pytest.mark.parametrize("backend", ["hf", "tl"])
def test_live_norm_batch_equals_the_authors_batch_of_one(tiny, backend):
    be = HFBackend(tiny) if backend == "hf" else TLBackend(tiny)
    ids, how = S.to_tokens_ids(be, tiny.tokenizer, "The forecast for tomorrow says light rain")
    assert ids == TLBackend(tiny).model.to_tokens("The forecast for tomorrow says light rain",
                                                  move_to_device=False)[0].tolist(), how  # same ids on both backends
    torch.manual_seed(3)
    u = torch.randn(64)
    u = u / (u.norm() + 1e-8)
    strengths = [0.0, 0.05, 0.5, 2.0]
    eos = tiny.tokenizer.eos_token_id
    got = S.steer_generate_live(tiny, be, ids, {li: u for li in range(4)}, strengths, 12, {eos})
    want = [_authors_loop(tiny, be, ids, u, s, 12, eos) for s in strengths]
    assert got == want
    assert got[0] == S.steer_generate(tiny, be, ids, None, 1, 12)[0][:len(got[0])]  # strength 0: unsteered
    assert len({tuple(g) for g in got}) > 1  # the push changes something


def test_paper_and_corrected_steering_runs_sit_side_by_side(tiny, tmp_path, monkeypatch):
    from repro.protocol import resolve_protocol

    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    spec = tiny.spec
    _fake_comprehension(spec)
    paper = S.run_steering(spec, backend="tl", precision="fp32", device="cpu", progress=False)
    corr = S.run_steering(spec, backend="tl", precision="fp32", device="cpu", progress=False,
                          protocol=resolve_protocol("corrected"))
    assert paper.name == "steering" and corr.name == "steering-corrected"
    pm, cm = (json.loads((d / "metadata.json").read_text()) for d in (paper, corr))
    assert pm["max_new_tokens"] == S.AUTHORS_NEW_TOKENS and cm["max_new_tokens"] == S.MAX_NEW_TOKENS
    assert pm["protocol"]["matches"] == ["paper"] and cm["protocol"]["matches"] == ["corrected"]
    assert pm["tokenisation"].startswith("TransformerLens to_tokens") and "authors" in pm["judged"]
    res = json.loads((paper / "steering.json").read_text())
    for smp in res["samples"]:  # every measure the rule reads is there, so the verdict can be recomputed
        assert smp["judged_text"] == smp["text"][:200]
        again = S.measures(smp["text"], authors_rule=True)
        assert (smp["max_trigram_count"], smp["word_count"]) == (again["max_trigram_count"], again["word_count"])
    assert S.classify(res["samples"])["regime"] == res["regime"] == pm["regime"]
