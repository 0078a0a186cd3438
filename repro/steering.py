"""Additive steering along comprehension emotion vectors and the steering-regime descriptor
(paper Section 2.5 item 4, inherited from Jeong 2026a: surgical / repetitive collapse / explosive).

Two procedures, chosen by the protocol (repro.protocol, docs/PROTOCOLS.md); each difference is its own
switch (``steer_*``), so any mix runs.

``--protocol paper`` (the default) is the authors' ``classify_steering_regime``:
  * vector: the best layer's comprehension vector of the target emotion, unit-normalised
    (v / (|v| + 1e-8)), added at *every* layer's resid_post (``steer_best_vector_every_layer``);
  * scale: strength x the mean L2 norm, over all positions of the sequence (BOS included, which
    dominates it), of the activation being steered at that layer, recomputed on the whole sequence at
    every new token (``steer_live_norm_all_positions``; so there is no KV cache);
  * prompt tokenised with TransformerLens ``to_tokens`` (BOS prepended by default), 20 greedy new tokens,
    stopping at the tokenizer's EOS (``steer_to_tokens_20``);
  * the regime judged from each text's first 200 characters, words split on whitespace
    (``steer_regime_first200_whitespace``).
``--protocol corrected`` is emogeo's own procedure: at layer l the layer's own vector v_l / |v_l|, scaled
by the mean norm of the *unsteered* residual after block l over the prompt tokens excluding the first
(attention-sink) token, fixed during generation (KV cache); the HF tokenizer's defaults; 40 new tokens
(EOS: every id of the model's generation config); the regime over the whole text, words = runs of letters.
``layers="best"`` adds the vector at the best layer only (either procedure).

Backends. HF: forward hooks on the decoder layers change the layer output. TL: hooks on
``blocks.{l}.hook_resid_post``. One batch per scenario holds the unsteered row and the five strengths
(the same prompt, so no padding); the live norm is taken per row, as the authors' batch of one did.
Scenarios: the stimulus set's (the authors' prompts and strengths with ``--stimuli-set authors``), else
ours; the artifact names which.

Per sample: the text, the part the rule judged, its perplexity under the unsteered model (HF weights, mean
NLL of every generated token incl. a final EOS), the ratio to the unsteered continuation's perplexity, the
largest count of any word 3-gram, and the word count.

Regime rule (model level, over the steered samples only, i.e. strength > 0), checked in this order:
  1. more than 50% of samples repeat some word 3-gram 3 or more times -> "repetitive_collapse";
  2. otherwise, more than 30% of samples have fewer than 3 words      -> "explosive";
  3. otherwise                                                          -> "surgical".
All per-sample measures are saved, so a reader can recompute the verdict (``classify``).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import torch

from . import artifacts, options
from .models import ModelSpec, resolve
from .protocol import Protocol, resolve_protocol, run_applied
from .protocol import suffix as protocol_suffix
from .runlock import run_lock
from .stimuli.sets import load_steering_scenarios, resolve_set

SCHEMA = "emogeo.steering/1"
STRENGTHS = (0.005, 0.01, 0.02, 0.03, 0.05)
MAX_NEW_TOKENS = 40      # corrected
AUTHORS_NEW_TOKENS = 20  # paper (steer_to_tokens_20)
AUTHORS_JUDGED_CHARS = 200  # paper (steer_regime_first200_whitespace)
STAGE = "steering"
REPEAT_MIN = 3          # a 3-gram seen this many times counts as a repetition
REPETITIVE_FRACTION = 0.5
SHORT_WORDS = 3         # fewer words than this counts as a degenerate (explosive) sample
EXPLOSIVE_FRACTION = 0.3
RULE = (f"over steered samples (strength > 0): if > {REPETITIVE_FRACTION:.0%} have a word 3-gram repeated "
        f">= {REPEAT_MIN} times -> repetitive_collapse; elif > {EXPLOSIVE_FRACTION:.0%} have < {SHORT_WORDS} "
        f"words -> explosive; else surgical (checked in this order)")
JUDGED = {True: f"first {AUTHORS_JUDGED_CHARS} characters of each text, words split on whitespace (the authors')",
          False: "whole text, words = runs of letters (emogeo)"}

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


def max_trigram_count(text: str, split=words) -> int:
    w = split(text)
    grams = Counter(tuple(w[i:i + 3]) for i in range(len(w) - 2))
    return max(grams.values()) if grams else 0


def _whitespace_words(text: str) -> list[str]:
    return text.lower().split()


def measures(text: str, authors_rule: bool) -> dict:
    """What the regime rule reads from one sample: the authors' (first 200 characters, whitespace words)
    or emogeo's (whole text, runs of letters)."""
    judged = text[:AUTHORS_JUDGED_CHARS] if authors_rule else text
    split = _whitespace_words if authors_rule else words
    return {"judged_text": judged, "max_trigram_count": max_trigram_count(judged, split),
            "word_count": len(split(judged))}


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
def load_comprehension(slug: str, alias: str, stimuli_set: str | None = None, protocol: Protocol | None = None
                       ) -> tuple[Path, dict, torch.Tensor]:
    """The model's comprehension run (on ``stimuli_set`` when one is named: vectors from one set are never
    steered with another set's scenarios; a run of ``protocol`` first, as the loose generation picks it)."""
    from .generation import find_comprehension_run
    from .stimuli.sets import run_stimuli_set

    run = find_comprehension_run(slug, stimuli_set, protocol)
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


def to_tokens_ids(backend, tokenizer, text: str) -> tuple[list[int], str]:
    """The authors' tokenisation: TransformerLens ``to_tokens`` (its default: prepend BOS unless the tokenizer
    already does). On the HF backend the same rule is applied to the HF tokenizer (TL's defaults)."""
    if backend.name == "tl":
        tl = backend.model
        return (tl.to_tokens(text, move_to_device=False)[0].tolist(),
                f"TransformerLens to_tokens (default_prepend_bos={tl.cfg.default_prepend_bos})")
    ids = list(tokenizer(text)["input_ids"])
    bos = tokenizer.bos_token_id
    prepends = len(tokenizer.encode("")) > 0  # TransformerLens' tokenizer_prepends_bos test
    if bos is not None and not prepends:
        ids = list(tokenizer(tokenizer.bos_token + text)["input_ids"])
    return ids, "TransformerLens to_tokens rule on the HF tokenizer (prepend BOS unless the tokenizer does)"


def _hooked_forward(lm, backend, layers: list[int], edit):
    """A function ids -> logits running the model with ``edit(value, layer)`` applied to every listed
    layer's residual output (TL ``blocks.{l}.hook_resid_post``; HF the decoder layer's output)."""
    if backend.name == "tl":
        tl = backend.model
        hooks = [(f"blocks.{li}.hook_resid_post", (lambda value, hook, li=li: edit(value, li))) for li in layers]
        return lambda ids: tl.run_with_hooks(ids.to(tl.cfg.device), fwd_hooks=hooks)
    from .backends import HFBackend

    hb = backend if isinstance(backend, HFBackend) else HFBackend(lm)

    def forward(ids):
        handles = []
        for li in layers:
            def hook(_m, _i, output, li=li):
                if isinstance(output, tuple):
                    return (edit(output[0], li),) + tuple(output[1:])
                return edit(output, li)
            handles.append(hb.layers[li].register_forward_hook(hook))
        try:
            ids = ids.to(lm.model.device)
            return lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        finally:
            for h in handles:
                h.remove()
    return forward


@torch.inference_mode()
def steer_generate_live(lm, backend, prompt_ids: list[int], directions: dict[int, torch.Tensor],
                        strengths: list[float], max_new_tokens: int, eos: set[int]) -> list[list[int]]:
    """The authors' loop: one row per strength; at every new token the whole sequence is run again and
    each listed layer's residual gets ``direction * strength * mean_l2_norm(residual over all positions)``
    (per row). Greedy; returns generated ids per row, trimmed after EOS."""
    P = len(prompt_ids)
    ids = torch.tensor([prompt_ids] * len(strengths), dtype=torch.long)

    def edit(value, li):
        s = torch.tensor(strengths, device=value.device, dtype=value.dtype)[:, None, None]
        norm = value.norm(dim=-1).mean(dim=-1)[:, None, None]  # per row: the authors' batch of one
        return value + directions[li].to(value.device, value.dtype)[None, None, :] * s * norm

    forward = _hooked_forward(lm, backend, sorted(directions), edit)
    for _ in range(max_new_tokens):
        nxt = forward(ids)[:, -1].argmax(dim=-1).cpu()
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if all(any(t in eos for t in row[P:]) for row in ids.tolist()):
            break
    return _trim(ids[:, P:].tolist(), eos)


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
                 strengths=STRENGTHS, max_new_tokens: int | None = None, force: bool = False,
                 progress: bool = True, device: str | None = None, stimuli_set: str | None = None,
                 protocol: Protocol | None = None) -> Path:
    """Write ``artifacts/runs/<slug>/steering/steering.json`` (+ metadata.json); returns the directory
    (see ``_run_steering``). The run's lock (repro.runlock) is held until it is written."""
    with ExitStack() as locks:
        return _run_steering(model, layers, backend, precision, strengths, max_new_tokens, force, progress, device,
                             stimuli_set, protocol, locks)


def _run_steering(model, layers, backend, precision, strengths, max_new_tokens, force, progress, device,
                  stimuli_set, protocol, locks: ExitStack) -> Path:
    """Write ``artifacts/runs/<slug>/steering/steering.json`` (+ metadata.json); returns the directory.
    With a stimulus set other than ours: its scenarios (when it has them) and its comprehension run, in
    ``steering-stim<digest8>/``; under a protocol other than ``paper`` (default) the folder carries its
    suffix (``-corrected``, ``-q<hash8>``). ``max_new_tokens`` None: 20 (paper) or 40 (corrected)."""
    from .backends import make_backend, method_departures
    from .generation import resolve_precision
    from .loading import default_device, load_model

    layers = options.choice(layers, options.STEER_LAYERS, "layers")  # every option before any compute
    backend = options.choice(backend, options.BACKENDS, "backend")
    precision = options.choice(precision, options.PRECISIONS, "precision")
    max_new_tokens = options.count(max_new_tokens, "max-new-tokens")
    proto = protocol or resolve_protocol()
    on = {d: proto.on(d) for d in proto.identity(STAGE)}
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    device = options.device(device) or default_device()
    precision, prec_note = resolve_precision(precision, device)
    sset = resolve_set(stimuli_set)
    comp_run, comp_meta, vectors = load_comprehension(spec.slug, spec.alias, None if sset.default else sset.name,
                                                      proto)
    scenarios = load_steering_scenarios(sset.steering_scenarios) if sset.steering_scenarios else SCENARIOS
    scen_digest = hashlib.sha256(json.dumps(scenarios, sort_keys=True).encode()).hexdigest()
    # The vectors' run is an input: its switches are part of this run's identity (as for the loose run).
    applied = {**proto.identity(STAGE), **run_applied(comp_meta)}
    n_new = int(max_new_tokens or (AUTHORS_NEW_TOKENS if on["steer_to_tokens_20"] else MAX_NEW_TOKENS))
    out = artifacts.run_dir(spec.slug, ("steering" if sset.default else f"steering-stim{scen_digest[:8]}")
                            + protocol_suffix(STAGE, applied))
    rule = f"{RULE}; judged on the {JUDGED[on['steer_regime_first200_whitespace']]}"
    config = {"schema": SCHEMA, "model": spec.hub_id, "layers": layers, "backend": backend,
              "precision": precision, "device_type": str(device).split(":")[0],
              "strengths": [float(x) for x in strengths], "max_new_tokens": n_new,
              "scenarios": list(scenarios), "comprehension_run": str(comp_run.name),
              "comprehension_hash": comp_meta.get("config_hash"), "rule": rule, "protocol_applied": applied,
              **({"revision": spec.revision} if spec.revision else {})}

    def log(msg):
        if progress:
            print(f"[steering] {msg}", file=sys.stderr, flush=True)

    if not force and artifacts.finished(out, config):
        log(f"{out} is complete for this config; skipping (use --force to redo)")
        return out
    artifacts.check_writable(out.parent)  # read-only or full: one line before any compute
    locks.enter_context(run_lock(out, log))  # one writer per run: a second process is refused in one line
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
    eos = ({lm.tokenizer.eos_token_id} - {None}) if on["steer_to_tokens_20"] else _eos(lm)
    samples, tokenisation = [], "HF tokenizer defaults"
    with timer("steer"):
        for sc in scenarios:
            alphas = [0.0] + [float(x) for x in (sc.get("strengths") or strengths)]
            if on["steer_to_tokens_20"]:
                prompt_ids, tokenisation = to_tokens_ids(be, lm.tokenizer, sc["prompt"])
            else:
                prompt_ids = list(lm.tokenizer(sc["prompt"])["input_ids"])
            e = emotions.index(sc["emotion"])
            if on["steer_best_vector_every_layer"]:
                v = vectors[best, e]
                directions = {li: v / (v.norm() + 1e-8) for li in target_layers}
            else:
                directions = {li: vectors[li, e] / vectors[li, e].norm().clamp_min(1e-30) for li in target_layers}
            if on["steer_live_norm_all_positions"]:
                gens = steer_generate_live(lm, be, prompt_ids, directions, alphas, n_new, eos)
            else:
                norms = prompt_norms(lm, prompt_ids, target_layers)
                a = torch.tensor(alphas)[:, None]
                deltas = {li: a * norms[li] * directions[li][None, :] for li in target_layers}
                gens = _trim(steer_generate(lm, be, prompt_ids, deltas, len(alphas), n_new), eos)
            base_ppl = perplexity(lm, prompt_ids, gens[0])
            for alpha, g in zip(alphas, gens):
                text = lm.tokenizer.decode(g, skip_special_tokens=True)
                ppl = perplexity(lm, prompt_ids, g)
                samples.append({
                    "scenario": sc["name"], "emotion": sc["emotion"], "strength": alpha, "steered": alpha > 0,
                    "text": text, "n_tokens": len(g), "perplexity": ppl,
                    "perplexity_ratio": (ppl / base_ppl) if (ppl is not None and base_ppl) else None,
                    **measures(text, on["steer_regime_first200_whitespace"])})
            log(f"{sc['name']}: done")
    verdict = classify(samples)
    per_strength = {}
    for x in sorted({smp["strength"] for smp in samples if smp["steered"]}):
        sel = [smp for smp in samples if smp["strength"] == x]
        ratios = [smp["perplexity_ratio"] for smp in sel if smp["perplexity_ratio"] is not None]
        per_strength[str(x)] = {"mean_perplexity_ratio": (sum(ratios) / len(ratios)) if ratios else None,
                                "mean_word_count": sum(smp["word_count"] for smp in sel) / len(sel),
                                "max_trigram_count": max(smp["max_trigram_count"] for smp in sel)}
    result = {
        "schema": SCHEMA, "regime": verdict["regime"], "rule": rule,
        "metrics": {**verdict, "per_strength": per_strength},
        "samples": samples,
    }
    norm_text = ("strength x mean L2 norm of the residual being steered over all positions, recomputed at every "
                 "new token (the authors')" if on["steer_live_norm_all_positions"] else
                 "mean L2 norm of the unsteered residual after each steered block over the prompt tokens, first "
                 "token excluded; one value per (scenario, layer)")
    meta = {
        "schema": SCHEMA, "kind": "steering", "config": config, "config_hash": artifacts.config_hash(config),
        "model": spec.to_dict(), "weights_revision": lm.info.get("weights_revision"), "precision": precision,
        "device": device, "backend": be.name,
        "backend_reason": be_reason, "paper_method": not departures,
        "method_departures": departures, "layers": target_layers, "best_layer": best,
        "vector": ("the best layer's vector at every steered layer" if on["steer_best_vector_every_layer"]
                   else "each steered layer's own vector"),
        "norm": norm_text, "tokenisation": tokenisation, "max_new_tokens": n_new,
        "eos_ids": sorted(eos), "judged": JUDGED[on["steer_regime_first200_whitespace"]],
        "protocol": proto.record(STAGE, applied),
        "comprehension_run": str(comp_run), "regime": verdict["regime"],
        "stimuli": {"default": sset.default, "set": sset.name, "scenarios_sha256": scen_digest,
                    "scenarios": "the set's" if sset.steering_scenarios else "emogeo (shipped, ours)"},
        "paper_note": "the paper reports steering regimes for its TL-backend models only "
                      "(not_available_hf_backend otherwise); this implementation runs on both backends",
        "notes": [n for n in [prec_note] if n], "env": artifacts.environment(device), "timings": timer.timings,
    }
    with artifacts.atomic_dir(out, sums=True) as tmp:
        artifacts.write_json_atomic(tmp / "steering.json", result)
        artifacts.write_json_atomic(tmp / "metadata.json", meta)
    log(f"regime {verdict['regime']} -> {out}")
    return out
