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
    assert res["regime"] in ("surgical", "repetitive_collapse", "explosive") and res["rule"] == S.RULE
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
