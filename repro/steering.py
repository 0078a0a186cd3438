"""Additive steering along comprehension emotion vectors and the steering-regime descriptor
(paper Section 2.5 item 4, inherited from Jeong 2026a: surgical / repetitive collapse / explosive).

Intervention. For every steered layer l the residual stream after block l gets, at every position
(prompt and generated tokens), ``alpha * norm_l * v_l / |v_l|`` where v_l is the model's centred
comprehension vector of the target emotion at layer l (``vectors`` [L, 21, d] of its comprehension
run) and norm_l is the *mean L2 norm of the unsteered residual after block l over the scenario's
prompt tokens, excluding the first token* (position 0 carries the attention-sink outlier norm of many
models and would dominate a mean). alpha runs over five strengths (0.005 ... 0.05). By default the
vector is added at every layer, as the original steering script did (so the total push grows with
depth); ``layers="best"`` adds it at the comprehension best layer only.

Backends. HF: forward hooks on the decoder layers add the vector to the layer output. TL: hooks on
``blocks.{l}.hook_resid_post``. Both generate greedily (``max_new_tokens`` 40) from a plain-text
prompt (no chat template, so base and instruct models are treated alike); one batch per scenario
holds the unsteered row and the five strengths (the same prompt, so no padding).

Per sample: the continuation text, its perplexity under the unsteered model (HF weights, mean NLL of
every generated token incl. a final EOS), the ratio to the unsteered continuation's perplexity, the
largest count of any word 3-gram, and the word count (words = runs of letters).

Regime rule (model level, over the steered samples only, i.e. strength > 0), checked in this order:
  1. more than 50% of samples repeat some word 3-gram 3 or more times -> "repetitive_collapse";
  2. otherwise, more than 30% of samples have fewer than 3 words      -> "explosive";
  3. otherwise                                                          -> "surgical".
(A sample under 3 words cannot repeat a 3-gram, so per sample the two signs exclude each other; the
order only decides the degenerate case where both thresholds are crossed.) All per-sample metrics are
saved so the rule can be revisited.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import torch

from . import artifacts
from .models import ModelSpec, resolve
from .stimuli.sets import load_steering_scenarios, resolve_set

SCHEMA = "emogeo.steering/1"
STRENGTHS = (0.005, 0.01, 0.02, 0.03, 0.05)
MAX_NEW_TOKENS = 40
REPEAT_MIN = 3          # a 3-gram seen this many times counts as a repetition
REPETITIVE_FRACTION = 0.5
SHORT_WORDS = 3         # fewer words than this counts as a degenerate (explosive) sample
EXPLOSIVE_FRACTION = 0.3
RULE = (f"over steered samples (strength > 0): if > {REPETITIVE_FRACTION:.0%} have a word 3-gram repeated "
        f">= {REPEAT_MIN} times -> repetitive_collapse; elif > {EXPLOSIVE_FRACTION:.0%} have < {SHORT_WORDS} "
        f"words -> explosive; else surgical (checked in this order)")

# Our own scenario sentences (plain-text continuation prompts).
SCENARIOS = (
    {"name": "aggressive_to_calm", "emotion": "calm",
     "prompt": "\"Move your car out of my spot right now or I will smash every window in it,\" he yelled, "
               "pounding on the glass."},
    {"name": "neutral_to_hostile", "emotion": "hostile",
     "prompt": "Tomorrow's forecast calls for scattered clouds in the morning, a light westerly wind and "
               "temperatures of around fourteen degrees."},
)


class SteeringError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------ metrics
def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.lower())


def max_trigram_count(text: str) -> int:
    w = words(text)
    grams = Counter(tuple(w[i:i + 3]) for i in range(len(w) - 2))
    return max(grams.values()) if grams else 0


def classify(samples: list[dict]) -> dict:
    """Regime from per-sample ``max_trigram_count`` and ``word_count`` (samples with strength > 0)."""
    steered = [s for s in samples if s.get("strength", 1) > 0]
    if not steered:
        raise ValueError("no steered samples to classify")
    rep = sum(1 for s in steered if s["max_trigram_count"] >= REPEAT_MIN) / len(steered)
    short = sum(1 for s in steered if s["word_count"] < SHORT_WORDS) / len(steered)
    if rep > REPETITIVE_FRACTION:
        regime = "repetitive_collapse"
    elif short > EXPLOSIVE_FRACTION:
        regime = "explosive"
    else:
        regime = "surgical"
    return {"regime": regime, "fraction_repetitive": rep, "fraction_short": short, "n_steered": len(steered)}


# ---------------------------------------------------------------------------------------- vectors
def load_comprehension(slug: str, alias: str, stimuli_set: str | None = None) -> tuple[Path, dict, torch.Tensor]:
    """The model's comprehension run (on ``stimuli_set`` when one is named: vectors from one set are never
    steered with another set's scenarios)."""
    from .generation import find_comprehension_run
    from .stimuli.sets import run_stimuli_set

    run = find_comprehension_run(slug, stimuli_set)
    flag = f" --stimuli-set {stimuli_set}" if stimuli_set else ""
    if run is None:
        raise SteeringError(
            f"no comprehension run for {alias} under {artifacts.runs_dir() / slug}/comprehension-*/: steering "
            f"uses the model's comprehension emotion vectors; run `invoke extract --model {alias}{flag}` first")
    meta = artifacts.load_metadata(run)
    if stimuli_set and run_stimuli_set(meta) != stimuli_set:
        raise SteeringError(f"no comprehension run of {alias} on the stimuli set {stimuli_set!r}; run "
                            f"`invoke extract --model {alias}{flag}` first")
    vec = artifacts.load_vectors(run)
    if "vectors" not in vec:
        raise SteeringError(f"{run}/vectors.safetensors has no 'vectors' tensor; rerun `invoke extract`")
    return run, meta, vec["vectors"].float()


@torch.inference_mode()
def prompt_norms(lm, prompt_ids: list[int], layers: list[int]) -> dict[int, float]:
    """Mean L2 norm of the unsteered residual after each block in ``layers`` over the prompt tokens,
    excluding the first (attention-sink) token; HF hooks."""
    from .backends import HFBackend

    hb = HFBackend(lm)
    norms: dict[int, float] = {}
    handles = []
    for li in layers:
        def hook(_m, _i, output, li=li):
            h = output[0] if isinstance(output, tuple) else output
            h = h[0, 1:] if h.shape[1] > 1 else h[0]
            norms[li] = float(h.float().norm(dim=-1).mean())
        handles.append(hb.layers[li].register_forward_hook(hook))
    try:
        ids = torch.tensor([prompt_ids], device=lm.model.device)
        hb.base(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return norms


# ------------------------------------------------------------------------------------- generation
def _eos(lm) -> set[int]:
    from .generation import eos_ids

    return eos_ids(lm)


def _trim(rows: list[list[int]], eos: set[int]) -> list[list[int]]:
    return [r[:next((k + 1 for k, t in enumerate(r) if t in eos), len(r))] for r in rows]


@torch.inference_mode()
def steer_generate(lm, backend, prompt_ids: list[int], deltas: dict[int, torch.Tensor] | None,
                   n_rows: int, max_new_tokens: int = MAX_NEW_TOKENS) -> list[list[int]]:
    """Greedy continuation of one prompt repeated ``n_rows`` times; ``deltas`` maps layer -> [n_rows, d]
    additive vectors (None: no hooks at all). Returns generated ids per row, trimmed after EOS."""
    import copy

    eos = _eos(lm)
    ids = torch.tensor([prompt_ids] * n_rows, dtype=torch.long)
    deltas = deltas or {}
    if backend.name == "tl":
        tl = backend.model
        dev = tl.cfg.device

        def make(li):
            d = deltas[li].to(dev)

            def fn(act, hook):
                return act + d[:, None, :].to(act.dtype)
            return fn
        hooks = [(f"blocks.{li}.hook_resid_post", make(li)) for li in deltas]
        with tl.hooks(fwd_hooks=hooks):
            out = tl.generate(ids.to(dev), max_new_tokens=max_new_tokens, do_sample=False, stop_at_eos=True,
                              eos_token_id=sorted(eos)[0] if len(eos) == 1 else sorted(eos),
                              verbose=False, use_past_kv_cache=True)
        return _trim(out[:, ids.shape[1]:].tolist(), eos)
    from .backends import HFBackend

    hb = backend if isinstance(backend, HFBackend) else HFBackend(lm)
    dev = lm.model.device
    handles = []
    for li, d in deltas.items():
        d = d.to(dev)

        def hook(_m, _i, output, d=d):
            if isinstance(output, tuple):
                return (output[0] + d[:, None, :].to(output[0].dtype),) + tuple(output[1:])
            return output + d[:, None, :].to(output.dtype)
        handles.append(hb.layers[li].register_forward_hook(hook))
    gc = copy.deepcopy(lm.model.generation_config)
    gc.max_new_tokens = max_new_tokens
    gc.do_sample = False
    for k in ("temperature", "top_p", "top_k"):
        setattr(gc, k, None)
    gc.pad_token_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else sorted(eos)[0]
    try:
        out = lm.model.generate(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev),
                                generation_config=gc)
    finally:
        for h in handles:
            h.remove()
    return _trim(out[:, ids.shape[1]:].tolist(), eos)


@torch.inference_mode()
def perplexity(lm, prompt_ids: list[int], gen_ids: list[int]) -> float | None:
    """exp(mean NLL) of ``gen_ids`` after ``prompt_ids`` under the unsteered HF model."""
    if not gen_ids:
        return None
    ids = torch.tensor([list(prompt_ids) + list(gen_ids)], device=lm.model.device)
    logits = lm.model(input_ids=ids).logits[0].float()
    P = len(prompt_ids)
    logp = logits[P - 1:-1].log_softmax(-1)
    tgt = ids[0, P:]
    nll = -logp.gather(1, tgt[:, None]).mean()
    v = float(nll.exp())
    return v if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------ runner
def run_steering(model, layers: str = "all", backend: str = "auto", precision: str = "auto",
                 strengths=STRENGTHS, max_new_tokens: int = MAX_NEW_TOKENS, force: bool = False,
                 progress: bool = True, device: str | None = None, stimuli_set: str | None = None) -> Path:
    """Write ``artifacts/runs/<slug>/steering/steering.json`` (+ metadata.json); returns the directory.
    With a stimulus set other than ours: its scenarios (when it has them) and its comprehension run,
    in ``steering-stim<digest8>/``."""
    from .backends import make_backend, method_departures
    from .generation import resolve_precision
    from .loading import default_device, load_model

    if layers not in ("all", "best"):
        raise ValueError(f"--layers {layers!r}: choose all or best")
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    device = device or default_device()
    precision, prec_note = resolve_precision(precision, device)
    sset = resolve_set(stimuli_set)
    comp_run, comp_meta, vectors = load_comprehension(spec.slug, spec.alias, None if sset.default else sset.name)
    scenarios = load_steering_scenarios(sset.steering_scenarios) if sset.steering_scenarios else SCENARIOS
    scen_digest = hashlib.sha256(json.dumps(scenarios, sort_keys=True).encode()).hexdigest()
    out = artifacts.run_dir(spec.slug, "steering" if sset.default else f"steering-stim{scen_digest[:8]}")
    config = {"schema": SCHEMA, "model": spec.hub_id, "layers": layers, "backend": backend,
              "precision": precision, "device_type": str(device).split(":")[0],
              "strengths": [float(s) for s in strengths], "max_new_tokens": int(max_new_tokens),
              "scenarios": list(scenarios), "comprehension_run": str(comp_run.name),
              "comprehension_hash": comp_meta.get("config_hash"), "rule": RULE}

    def log(msg):
        if progress:
            print(f"[steering] {msg}", file=sys.stderr, flush=True)

    if not force and artifacts.finished(out, config):
        log(f"{out} is complete for this config; skipping (use --force to redo)")
        return out
    timer = artifacts.Timer()
    with timer("load"):
        lm = load_model(spec, precision, device)
        be, be_reason = make_backend(lm, backend)
        departures = method_departures(spec, be.name)
    emotions = list(comp_meta["emotions"])
    L = vectors.shape[0]
    if L != lm.n_layers:
        raise SteeringError(f"{comp_run}: vectors have {L} layers but the model has {lm.n_layers}")
    best = int(comp_meta["best_layer"])
    target_layers = list(range(L)) if layers == "all" else [best]
    alphas = [0.0] + [float(s) for s in strengths]
    samples = []
    with timer("steer"):
        for sc in scenarios:
            prompt_ids = list(lm.tokenizer(sc["prompt"])["input_ids"])
            norms = prompt_norms(lm, prompt_ids, target_layers)
            e = emotions.index(sc["emotion"])
            a = torch.tensor(alphas)[:, None]
            deltas = {}
            for li in target_layers:
                v = vectors[li, e]
                u = v / v.norm().clamp_min(1e-30)
                deltas[li] = a * norms[li] * u[None, :]
            gens = steer_generate(lm, be, prompt_ids, deltas, len(alphas), max_new_tokens)
            base_ppl = perplexity(lm, prompt_ids, gens[0])
            for alpha, g in zip(alphas, gens):
                text = lm.tokenizer.decode(g, skip_special_tokens=True)
                ppl = perplexity(lm, prompt_ids, g)
                samples.append({
                    "scenario": sc["name"], "emotion": sc["emotion"], "strength": alpha, "steered": alpha > 0,
                    "text": text, "n_tokens": len(g), "perplexity": ppl,
                    "perplexity_ratio": (ppl / base_ppl) if (ppl is not None and base_ppl) else None,
                    "max_trigram_count": max_trigram_count(text), "word_count": len(words(text))})
            log(f"{sc['name']}: done")
    verdict = classify(samples)
    per_strength = {}
    for s in [float(x) for x in strengths]:
        sel = [x for x in samples if x["strength"] == s]
        ratios = [x["perplexity_ratio"] for x in sel if x["perplexity_ratio"] is not None]
        per_strength[str(s)] = {"mean_perplexity_ratio": (sum(ratios) / len(ratios)) if ratios else None,
                                "mean_word_count": sum(x["word_count"] for x in sel) / len(sel),
                                "max_trigram_count": max(x["max_trigram_count"] for x in sel)}
    result = {
        "schema": SCHEMA, "regime": verdict["regime"], "rule": RULE,
        "metrics": {**verdict, "per_strength": per_strength},
        "samples": samples,
    }
    meta = {
        "schema": SCHEMA, "kind": "steering", "config": config, "config_hash": artifacts.config_hash(config),
        "model": spec.to_dict(), "precision": precision, "device": device, "backend": be.name,
        "backend_reason": be_reason, "paper_method": not departures,
        "method_departures": departures, "layers": target_layers, "best_layer": best,
        "norm": "mean L2 norm of the unsteered residual after each steered block over the prompt tokens, "
                "first token excluded; one value per (scenario, layer)",
        "comprehension_run": str(comp_run), "regime": verdict["regime"],
        "stimuli": {"default": sset.default, "set": sset.name, "scenarios_sha256": scen_digest,
                    "scenarios": "the set's" if sset.steering_scenarios else "emogeo (shipped, ours)"},
        "paper_note": "the paper reports steering regimes for its TL-backend models only "
                      "(not_available_hf_backend otherwise); this implementation runs on both backends",
        "notes": [n for n in [prec_note] if n], "env": artifacts.environment(device), "timings": timer.timings,
    }
    with artifacts.atomic_dir(out) as tmp:
        artifacts.write_json_atomic(tmp / "steering.json", result)
        artifacts.write_json_atomic(tmp / "metadata.json", meta)
    log(f"regime {verdict['regime']} -> {out}")
    return out
