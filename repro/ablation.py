"""One-at-a-time ablation of the protocol-matched generation pipeline (paper Section 4.3.2, item 3 of
its limitations: "we have not isolated which of the eight contributes most").

Each of the eight sub-parameters of ``protocol_matched`` is flipped, alone, to its ``loose`` value;
the flipped run's 20x20 cosine RDM is compared with the unflipped run's by Spearman rho over the
upper triangle. A last row flips all eight at once (the ``loose`` preset: the analogue of the
paper's B-vs-C contrast, rho = 0.019 / 0.033 for Mistral 7B / Llama 3.1 8B).

Work is shared across the nine runs (``repro.generation.Caches``): generations are cached by the
fields that affect them (prompt ids, decoding, per-sample seed), activations by prompt + generation,
and every forward pass reads all layers at both positions. So the layer, position, formula,
n_templates and generations_per_template flips cost no generation at all, the max_new_tokens flip
truncates the cached longer generations (greedy/per-row-seeded decoding makes the shorter run a
prefix of the longer one), and only the chat-template and decoding flips generate anew. A finished
protocol_matched run of the same model, config and stimuli (``generation_kind``) seeds the cache.

Reduced budgets (recorded in ablation.json): ``max_new_tokens`` replaces the base's 256; the loose
value of that sub-parameter is then scaled by the paper's ratio (100/256) so the flip still shortens
the budget. ``generations_per_template`` lowers the base's 10 repeats; under greedy decoding this
leaves the base vectors unchanged (identical repeats) and only reduces the number of samples the
decoding flip draws per template.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from . import artifacts, options
from .generation import (LOOSE, LOOSE_STAGE, PRESETS, SUBPARAMETERS, Caches, GenerationConfig, chat_available, collect,
                         default_batch_size, differing_subparameters, finalize, generation_kind, naive_count, plan,
                         preset, rdm_spearman, resolve_precision, run_config, seed_caches_from_run)
from .models import ModelSpec, resolve
from .protocol import Protocol, resolve_protocol
from .protocol import suffix as protocol_suffix
from .runlock import run_lock
from .stimuli import GENERATION_EMOTIONS
from .stimuli.sets import resolve_set

SCHEMA = "emogeo.ablation/1"
BASE_PRESET = "protocol_matched"


def loose_tokens(budget: int) -> int:
    """The loose max_new_tokens for a (possibly reduced) protocol budget: 100 at 256, same ratio below."""
    full = PRESETS[BASE_PRESET].max_new_tokens
    if budget == full:
        return LOOSE.max_new_tokens
    return max(1, round(budget * LOOSE.max_new_tokens / full))


def ablation_configs(max_new_tokens: int | None = None, generations_per_template: int | None = None,
                     protocol: Protocol | None = None
                     ) -> tuple[GenerationConfig, list[tuple[str, GenerationConfig, object]], GenerationConfig]:
    """(base, [(sub-parameter, flipped config, flipped_to)], all-flipped config). The loose end is the
    loose preset under ``protocol`` (default ``paper``: no top_k)."""
    base = preset(BASE_PRESET, max_new_tokens, generations_per_template)
    target = preset("loose", loose_tokens(base.max_new_tokens), protocol=protocol)
    t = target.to_dict()
    flips = []
    for name, fields in SUBPARAMETERS.items():
        cfg = base.replace(**{f: t[f] for f in fields})
        flipped_to = t[fields[0]] if len(fields) == 1 else {f: t[f] for f in fields}
        flips.append((name, cfg, flipped_to))
    return base, flips, target


def _printer(progress: bool):
    def log(msg):
        if progress:
            print(f"[ablation] {msg}", file=sys.stderr, flush=True)
    return log


def run_ablation(model, max_new_tokens: int | None = None, precision: str = "auto",
                 generations_per_template: int | None = None, force: bool = False, progress: bool = True,
                 device: str | None = None, batch_size: int | None = None,
                 emotions: tuple[str, ...] | None = None, stimuli_set: str | None = None,
                 protocol: Protocol | None = None) -> Path:
    """Write ``artifacts/runs/<slug>/ablation.json`` (``-stim<digest8>`` on stimuli other than the shipped
    set, ``-corrected`` or ``-q<hash8>`` when the loose end is not the ``paper`` one); returns its path.
    ``emotions`` (default: the 20) exists for fast tests only."""
    from .generation import quiet_bnb

    with quiet_bnb(), ExitStack() as locks:  # the run's lock (repro.runlock) is released when this returns
        return _run_ablation(model, max_new_tokens, precision, generations_per_template, force, progress, device,
                             batch_size, emotions, stimuli_set, protocol or resolve_protocol(), locks)


def _run_ablation(model, max_new_tokens, precision, generations_per_template, force, progress, device, batch_size,
                  emotions, stimuli_set, protocol, locks: ExitStack) -> Path:
    from .backends import HFBackend
    from .loading import default_device, load_model

    precision = options.choice(precision, options.PRECISIONS, "precision")  # every option before any compute
    max_new_tokens = options.count(max_new_tokens, "max-new-tokens")
    generations_per_template = options.count(generations_per_template, "generations-per-template")
    batch_size = options.count(batch_size, "batch-size")
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    device = options.device(device) or default_device()
    precision, prec_note = resolve_precision(precision, device)
    emotions = tuple(emotions or GENERATION_EMOTIONS)
    base, flips, target = ablation_configs(max_new_tokens, generations_per_template, protocol)
    sset = resolve_set(stimuli_set)
    base_rc = run_config(spec, BASE_PRESET, base, precision, device, sset)
    applied = protocol.identity(LOOSE_STAGE)
    name = ("ablation" + ("" if sset.default else f"-stim{base_rc['stimuli_sha256'][:8]}")
            + protocol_suffix(LOOSE_STAGE, applied))
    out = artifacts.runs_dir() / spec.slug / f"{name}.json"
    config = {"schema": SCHEMA, "base": base_rc,
              "flips": {n: c.to_dict() for n, c, _ in flips}, "all_flipped": target.to_dict(),
              "emotions": list(emotions)}
    chash = artifacts.config_hash(config)
    log = _printer(progress)
    if not force and out.exists():
        try:
            if json.loads(out.read_text()).get("config_hash") == chash:
                log(f"{out} is complete for this config; skipping (use --force to redo)")
                return out
        except (json.JSONDecodeError, OSError):
            pass
    artifacts.check_writable(out.parent)  # read-only or full: one line before any compute
    locks.enter_context(run_lock(out, log))  # one writer per run: a second process is refused in one line
    timer = artifacts.Timer()
    notes = [n for n in [prec_note] if n]
    if base.max_new_tokens != PRESETS[BASE_PRESET].max_new_tokens:
        notes.append(f"reduced budget: max_new_tokens {base.max_new_tokens} (paper 256); loose value scaled "
                     f"to {target.max_new_tokens} (paper 100)")
    if base.generations_per_template != PRESETS[BASE_PRESET].generations_per_template:
        notes.append(f"generations_per_template {base.generations_per_template} (paper 10): greedy base "
                     f"vectors unchanged; the decoding flip draws {base.generations_per_template} samples per "
                     f"template")
    with timer("load"):
        lm = load_model(spec, precision, device)
    backend = HFBackend(lm)
    bs = batch_size or default_batch_size(device)
    caches = Caches()
    gen_run = artifacts.run_dir(spec.slug, generation_kind(BASE_PRESET, precision, base, base_rc["stimuli_sha256"]))
    if (gen_run / "metadata.json").exists():
        meta = json.loads((gen_run / "metadata.json").read_text())
        rc = meta.get("config", {})
        mine = base_rc
        same = all(rc.get(k) == mine[k] for k in ("model", "precision", "device_type", "stimuli_sha256"))
        if same:
            n = seed_caches_from_run(caches, gen_run, lm.tokenizer, base,
                                     base.chat_template and chat_available(lm.tokenizer))
            if n:
                notes.append(f"reused {n} generations from {gen_run}")
                log(f"reusing {n} generations from {gen_run}")

    def run_one(label: str, cfg: GenerationConfig) -> dict:
        chat = cfg.chat_template and chat_available(lm.tokenizer)
        g0, f0, t0 = caches.generated, caches.forwarded, time.perf_counter()
        with timer(label):
            res = collect(lm, backend, cfg, plan(cfg, emotions, sset), caches, bs, chat,
                          log=lambda m: log(f"{label}: {m}"))
            fin = finalize(cfg, res, lm.n_layers, spec.slug, emotions, stimuli_set=sset.name, protocol=protocol)
        n_distinct = sum(len(v["records"]) for v in res.values())
        log(f"{label}: layer {fin['layer']}, {caches.generated - g0} new generations, "
            f"{time.perf_counter() - t0:.1f}s")
        return {"layer": fin["layer"], "layer_note": fin["layer_note"], "chat_template_applied": chat,
                "rdm": fin["rdm"].tolist(), "mean_pairwise_cosine": fin["mean_pairwise_cosine"],
                "distinct_generations": n_distinct, "new_generations": caches.generated - g0,
                "new_forwards": caches.forwarded - f0, "seconds": round(time.perf_counter() - t0, 3)}

    base_res = run_one("base", base)
    rows = []
    for name, cfg, flipped_to in flips:
        assert differing_subparameters(base, cfg) == [name], (name, differing_subparameters(base, cfg))
        r = run_one(name, cfg)
        r_notes = []
        if name == "generations_per_template" and not base.do_sample:
            r_notes.append("greedy decoding: repeats of a prompt are identical, so this flip cannot change "
                           "the vectors (rho 1 up to float rounding)")
        if name == "layer":
            r_notes.append(r["layer_note"])
        if name == "chat_template" and not base_res["chat_template_applied"]:
            r_notes.append("model has no chat template: the base already used plain text")
        rows.append({"parameter": name, "fields": list(SUBPARAMETERS[name]),
                     "from": base.to_dict()[SUBPARAMETERS[name][0]] if len(SUBPARAMETERS[name]) == 1 else
                     {f: base.to_dict()[f] for f in SUBPARAMETERS[name]},
                     "flipped_to": flipped_to, "rdm_spearman": rdm_spearman(base_res["rdm"], r["rdm"]),
                     "notes": r_notes, **r})
    allf = run_one("all_flipped", target)
    result = {
        "schema": SCHEMA, "kind": "ablation", "base_preset": BASE_PRESET, "model": spec.to_dict(),
        "weights_revision": lm.info.get("weights_revision"),
        "precision": precision, "device": device, "backend": "hf",
        "backend_reason": "raw HF hooks for every precision (TransformerLens refuses bitsandbytes models)",
        "emotions": list(emotions), "config": config, "config_hash": chash,
        "protocol": protocol.record(LOOSE_STAGE),
        "stimuli": {"default": sset.default, "set": sset.name, "sha256": base_rc["stimuli_sha256"]},
        "base": {"generation_config": base.to_dict(), **base_res},
        "rows": rows,
        "all_flipped": {"generation_config": target.to_dict(),
                        "rdm_spearman": rdm_spearman(base_res["rdm"], allf["rdm"]),
                        "note": "all eight flipped = the loose preset (cf. the paper's layer-2 B vs C)", **allf},
        "counts": {"generated": caches.generated, "forwarded": caches.forwarded,
                   "naive_generations": naive_count(base, len(emotions))
                   + sum(naive_count(c, len(emotions)) for _, c, _ in flips) + naive_count(target, len(emotions))},
        "notes": notes, "env": artifacts.environment(device), "timings": timer.timings,
        "batch_size": bs,
    }
    artifacts.write_json_atomic(out, result)
    log(f"wrote {out}")
    return out
