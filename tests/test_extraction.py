"""Comprehension extraction: real values on tiny models and synthetic vectors."""
import json

import pytest
import torch

from repro import artifacts, geometry, stimuli
from repro.backends import HFBackend, make_backend
from repro.extraction import ExtractionConfig, extract, layer_sweep, read_last_token, reference_layers, summarize


def _texts():
    ps = stimuli.load_comprehension()
    return [p.text for p in ps[:23]]


def test_centering_makes_layer_mean_zero(tiny_lm):
    lm = tiny_lm("llama")
    run = extract(resolve_path(lm), lm=lm, progress=False)
    vec = artifacts.load_vectors(run)["vectors"]
    assert vec.shape == (4, 21, 64)
    assert vec.mean(dim=1).abs().max() < 1e-5
    # and the uncentred means are not trivially zero
    assert artifacts.load_vectors(run)["emotion_means"].mean(dim=1).abs().max() > 1e-3


def resolve_path(lm):
    return lm.spec


def test_best_layer_is_argmin_and_margin():
    torch.manual_seed(0)
    v = geometry.center(torch.randn(6, 21, 32))
    v[3] = geometry.center(torch.randn(21, 32) * torch.linspace(0.1, 3, 32))  # a different layer
    s = layer_sweep(v)
    sweep = torch.tensor(s["layer_sweep"], dtype=torch.float64)
    assert s["best_layer"] == int(sweep.argmin())
    ordered = sweep.sort().values
    assert s["best_margin"] == pytest.approx(float(ordered[1] - ordered[0]))
    assert s["second_best_layer"] == int(sweep.argsort()[1])
    # a regular simplex (centred one-hot rows, equal norms) sits exactly on the floor -1/(k-1) and wins
    v[5] = geometry.center(torch.eye(21, 32))
    s = layer_sweep(v)
    assert s["best_layer"] == 5 and s["layer_sweep"][5] == pytest.approx(-1 / 20, abs=1e-12)


def test_fragile_flag():
    v = geometry.center(torch.randn(2, 21, 16))
    v[1] = v[0] * 2.0  # identical cosines -> margin 0 -> fragile
    s = layer_sweep(v)
    assert s["best_margin"] == pytest.approx(0.0, abs=1e-12) and s["fragile"]


def test_nan_layers_excluded_not_crash():
    v = geometry.center(torch.randn(8, 21, 16))
    v[5:] = float("nan")  # like Gemma-3 1B base at fp16 past its middle
    v[2, 3, 0] = float("inf")
    s = layer_sweep(v)
    assert s["nonfinite_layers"] == [2, 5, 6, 7]
    assert s["best_layer"] not in s["nonfinite_layers"]
    assert s["layer_sweep"][6] is None
    neutral = torch.randn(8, 20, 16)
    neutral[5:] = float("nan")
    labels = list(stimuli.EMOTIONS)
    acts = torch.randn(8, 21, 16)
    acts[5:] = float("nan")
    _, meta = summarize(acts, labels, stimuli.EMOTIONS, neutral, ExtractionConfig(model="x"))
    assert meta["nonfinite_layers"] == [5, 6, 7]
    assert meta["descriptors"]["75"]["anisotropy"] is None  # 75% of 8 = layer 6: not available
    best = meta["best_layer"]
    n = neutral[best] / neutral[best].norm(dim=1, keepdim=True)
    floor = (n @ n.T)[torch.triu_indices(20, 20, 1).unbind()].double().mean()
    assert meta["descriptors"]["best"]["anisotropy"] == pytest.approx(float(floor), abs=1e-6)


def test_reference_layers():
    assert reference_layers(26, 9) == {"best": 9, "25": 6, "50": 13, "75": 19}
    assert reference_layers(28, 15)["50"] == 14


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_batched_equals_unbatched(tiny_lm, family, side):
    lm = tiny_lm(family)
    be = HFBackend(lm)
    texts = _texts()
    batched = read_last_token(be, lm.tokenizer, texts, ExtractionConfig(model="x", batch_size=8, padding_side=side))
    single = read_last_token(be, lm.tokenizer, texts, ExtractionConfig(model="x", batch_size=1, padding_side=side))
    assert batched.shape == (4, len(texts), 64)
    assert torch.allclose(batched, single, atol=1e-4, rtol=1e-4), (batched - single).abs().max()


def test_tl_batched_left_padding_matches(tiny_lm):
    lm = tiny_lm("qwen2")
    be, _ = make_backend(lm, "tl")
    texts = _texts()[:9]
    a = read_last_token(be, lm.tokenizer, texts, ExtractionConfig(model="x", batch_size=9, padding_side="left"))
    b = read_last_token(be, lm.tokenizer, texts, ExtractionConfig(model="x", batch_size=1))
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_metadata_and_skip_on_rerun(tiny_lm, capsys):
    lm = tiny_lm("mistral")
    run = extract(lm.spec, lm=lm, progress=False)
    meta = json.loads((run / "metadata.json").read_text())
    # every number in the metadata is what the saved tensors give (recomputed independently, numpy float64)
    from analysis.run_values import comprehension_values

    summary, problems = comprehension_values(run, meta)
    assert problems == [] and summary["best_layer"] == meta["best_layer"]
    assert meta["anisotropy_best"] == pytest.approx(summary["anisotropy"], abs=5e-5)
    assert meta["rdm_std"] == pytest.approx(summary["rdm_std"], abs=5e-5)
    assert meta["backend"] == "tl" and run.name == "comprehension-fp32-tl"
    assert len(meta["rdm"]) == 21 and meta["rdm"][0][0] == pytest.approx(1.0)
    assert meta["env"]["versions"]["torch"]
    mtime = (run / "metadata.json").stat().st_mtime_ns
    again = extract(lm.spec, lm=lm, progress=True)
    assert again == run and (run / "metadata.json").stat().st_mtime_ns == mtime
    assert "skipping" in capsys.readouterr().out


def test_interrupted_run_resumes(tiny_lm, monkeypatch):
    lm = tiny_lm("llama")
    calls = {"n": 0}
    real = HFBackend.residuals

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return real(self, *a, **k)

    monkeypatch.setattr(HFBackend, "residuals", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract(lm.spec, backend="hf", lm=lm, progress=False)
    final = artifacts.run_dir(lm.spec.slug, "comprehension-fp32-hf")
    assert not final.exists()  # never half a run
    assert len(list((final.parent / (final.name + ".partial")).glob("p*.safetensors"))) == 4
    calls["n"] = 100
    run = extract(lm.spec, backend="hf", lm=lm, progress=False)
    n_batches = -(-252 // 16) + -(-20 // 16)
    assert calls["n"] - 100 == n_batches - 4  # only the unfinished batches ran again
    fresh = extract(lm.spec, backend="hf", lm=lm, progress=False, force=True)
    assert torch.equal(artifacts.load_vectors(run)["vectors"], artifacts.load_vectors(fresh)["vectors"])
    assert not (final.parent / (final.name + ".partial")).exists()


def test_bad_stimuli_keeps_message(tmp_path, tiny_lm):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,passage_id,text\nhappy,h1,\n")
    with pytest.raises(stimuli.StimulusError, match="bad.csv row 2"):
        extract(tiny_lm("llama").spec, stimuli_path=str(bad), lm=tiny_lm("llama"), progress=False)


def test_auto_and_explicit_backend_share_a_run(tiny_lm):
    lm = tiny_lm("qwen2")
    run = extract(lm.spec, backend="tl", lm=lm, progress=False)
    mtime = (run / "metadata.json").stat().st_mtime_ns
    assert extract(lm.spec, backend="auto", lm=lm, progress=False) == run
    assert extract(lm.spec, backend="tl", lm=lm, progress=False) == run
    assert (run / "metadata.json").stat().st_mtime_ns == mtime  # never recomputed


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_hf_last_layer_post_norm_reads_hidden_states_last(tiny_lm, family):
    """Protocol departure hf_last_layer_post_norm: the last layer is HF's hidden_states[-1] (after the final
    norm), every other layer is unchanged."""
    lm = tiny_lm(family)
    enc = lm.tokenizer(_texts()[:5], return_tensors="pt", padding=True)
    last = enc.attention_mask.sum(1) - 1
    pre = HFBackend(lm).residuals(enc.input_ids, enc.attention_mask, last)
    post = HFBackend(lm, last_layer_post_norm=True).residuals(enc.input_ids, enc.attention_mask, last)
    with torch.no_grad():
        hs = lm.model(**enc, output_hidden_states=True).hidden_states
    want = torch.stack([hs[-1][b, last[b]] for b in range(5)]).float()
    assert torch.allclose(post[-1], want, atol=1e-5, rtol=1e-5)
    assert torch.equal(post[:-1], pre[:-1]) and not torch.allclose(post[-1], pre[-1], atol=1e-3)


def test_paper_and_corrected_hf_runs_side_by_side(tiny_lm):
    from repro.layout import expected_name
    from repro.protocol import resolve_protocol

    lm = tiny_lm("llama")
    paper = extract(lm.spec, backend="hf", lm=lm, progress=False)
    corr = extract(lm.spec, backend="hf", lm=lm, progress=False, protocol=resolve_protocol("corrected"))
    assert paper.name == "comprehension-fp32-hf" and corr.name == "comprehension-fp32-hf-corrected"
    mp, mc = artifacts.load_metadata(paper), artifacts.load_metadata(corr)
    assert mp["protocol"]["name"] == "paper" and mc["protocol"]["name"] == "corrected"
    assert mp["protocol"]["applied"] == {"hf_neutral_first10": True, "hf_last_layer_post_norm": True}
    assert mc["protocol"]["applied"] == {"hf_neutral_first10": False, "hf_last_layer_post_norm": False}
    assert (mp["anisotropy_sentences"], mc["anisotropy_sentences"]) == (10, 20)
    neutral = artifacts.load_vectors(paper)["neutral_acts"].double()  # all 20 are kept
    assert neutral.shape[1] == 20
    first10 = torch.nn.functional.normalize(neutral[:, :10], dim=-1)
    cos = first10 @ first10.transpose(1, 2)
    iu = torch.triu_indices(10, 10, 1)
    assert mp["anisotropy"] == pytest.approx(cos[:, iu[0], iu[1]].mean(-1).tolist(), abs=1e-6)
    vp, vc = artifacts.load_vectors(paper)["vectors"], artifacts.load_vectors(corr)["vectors"]
    assert torch.equal(vp[:-1], vc[:-1]) and not torch.allclose(vp[-1], vc[-1], atol=1e-3)
    tl = extract(lm.spec, backend="tl", lm=lm, progress=False)  # only the TL switch applies to a TL run
    assert tl.name == "comprehension-fp32-tl"
    assert artifacts.load_metadata(tl)["protocol"]["applied"] == {"tl_to_tokens_bos": True}
    for run, meta in ((paper, mp), (corr, mc)):
        assert expected_name(meta) == run.name
    old = {k: v for k, v in mc.items() if k != "protocol"}  # an HF run written before protocols existed
    assert expected_name(old) == "comprehension-fp32-hf-corrected"  # it read what corrected reads


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tl_to_tokens_reads_what_transformer_lens_reads_per_text(tiny_lm, family):
    """Protocol departure tl_to_tokens_bos: batched reads of to_tokens ids equal TransformerLens's own
    run_with_cache(to_tokens(text)) at the last token, one text at a time (the authors' loop)."""
    from repro.backends import TLBackend

    lm = tiny_lm(family)
    be = TLBackend(lm)
    texts = _texts()[:6]
    cfg = ExtractionConfig(model="x", batch_size=4)
    got = read_last_token(be, lm.tokenizer, texts, cfg, encode=lambda t: be.model.to_tokens(t)[0].tolist())
    for j, t in enumerate(texts):
        toks = be.model.to_tokens(t)
        if be.model.cfg.default_prepend_bos:
            assert toks[0, 0].item() == be.model.tokenizer.bos_token_id
        _, cache = be.model.run_with_cache(toks)
        want = torch.stack([cache[f"blocks.{i}.hook_resid_post"][0, -1] for i in range(be.n_layers)]).float()
        assert torch.allclose(got[:, j], want, atol=1e-5, rtol=1e-5)
    plain = read_last_token(be, lm.tokenizer, texts, cfg)
    same_ids = all(lm.tokenizer(t).input_ids == be.model.to_tokens(t)[0].tolist() for t in texts)
    assert torch.allclose(plain, got, atol=1e-5) == same_ids  # differs exactly when the tokenisations differ
