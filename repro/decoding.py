"""Decoding and reading for generation-mode extraction: batched left-padded generation (greedy, or sampled
with one generator per sample so a sample never depends on its batch), the positions read (mid / last), and
the caches that let a run reuse generations and activations it has already computed (``collect``).
"""
from __future__ import annotations

import copy
import math
import time

import torch

from .generation_plan import MID_MIN_GEN_LEN, POSITIONS, GenerationConfig, Item, render, sample_seed


# ---------------------------------------------------------------------------------------- decoding
class PerRowSampler:
    """Logits processor that samples each row with its own seeded generator, then leaves only the drawn
    token finite so that the (greedy) generate step picks it.

    Warping follows transformers' order and rules: temperature, then top-k, then top-p (a token is kept
    while the probability mass of the more likely tokens is below top_p; the most likely is always
    kept). Top-k/top-p run on the device over the k best logits only; the draw runs on CPU."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float | None, top_k: int | None):
        self.gens = []
        for s in seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(int(s))
            self.gens.append(g)
        self.temperature, self.top_p, self.top_k = float(temperature), top_p, top_k

    def __call__(self, input_ids, scores):
        logits = scores.float() / self.temperature
        if self.top_k:
            vals, idx = torch.topk(logits, min(int(self.top_k), logits.shape[-1]), dim=-1)  # descending
        else:
            vals, idx = torch.sort(logits, dim=-1, descending=True)
        if self.top_p is not None and self.top_p < 1.0:
            probs = vals.softmax(-1)
            before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
            drop = before >= float(self.top_p)
            drop[..., 0] = False
            vals = vals.masked_fill(drop, -math.inf)
        probs = vals.softmax(-1).cpu()
        idx = idx.cpu()
        chosen = torch.stack([idx[i, torch.multinomial(probs[i], 1, generator=self.gens[i])]
                              for i in range(probs.shape[0])]).view(-1)
        out = torch.full_like(scores, -math.inf)
        out[torch.arange(out.shape[0], device=out.device), chosen.to(out.device)] = 0.0
        return out


def eos_ids(lm) -> set[int]:
    ids = getattr(lm.model.generation_config, "eos_token_id", None)
    if ids is None:
        ids = lm.tokenizer.eos_token_id
    return set(ids if isinstance(ids, (list, tuple)) else [ids]) - {None}


def _pad_left(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, T - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, T - len(s):] = 1
    return ids, mask


def _pad_id(lm) -> int:
    pid = lm.tokenizer.pad_token_id
    return int(pid if pid is not None else next(iter(eos_ids(lm))))


@torch.inference_mode()
def generate_batch(lm, prompts: list[list[int]], cfg: GenerationConfig, seeds: list[int] | None = None,
                   max_new_tokens: int | None = None) -> list[list[int]]:
    """Continue each prompt (left-padded batch, KV cache). Returns generated ids, trimmed after EOS."""
    n = int(max_new_tokens or cfg.max_new_tokens)
    ids, mask = _pad_left(prompts, _pad_id(lm))
    gc = copy.deepcopy(lm.model.generation_config)  # keep the model's own settings, as the fork did
    gc.max_new_tokens = n
    gc.do_sample = False  # sampled decoding is done by PerRowSampler; the greedy step takes its draw
    for k in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(gc, k):
            setattr(gc, k, None)
    gc.pad_token_id = _pad_id(lm)
    procs = None
    if cfg.do_sample:
        from transformers import LogitsProcessorList

        procs = LogitsProcessorList([PerRowSampler(seeds, cfg.temperature, cfg.top_p, cfg.top_k)])
    dev = lm.model.device
    out = lm.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), generation_config=gc,
                            logits_processor=procs)
    eos = eos_ids(lm)
    gens = []
    for row in out[:, ids.shape[1]:].tolist():
        cut = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
        gens.append(row[:cut])
    return gens


# -------------------------------------------------------------------------------------- extraction
def positions_for(prompt_len: int, gen_len: int) -> dict[str, int]:
    """Token index (in prompt + generation) read by each position rule."""
    mid = prompt_len + gen_len // 2 if gen_len > MID_MIN_GEN_LEN else prompt_len - 1
    return {"mid": mid, "last": prompt_len + gen_len - 1}


@torch.inference_mode()
def read_positions(backend, seqs: list[list[int]], positions: list[list[int]], pad_id: int,
                   layers: list[int] | None = None) -> torch.Tensor:
    """One forward pass of ``HFBackend``'s decoder over left-padded ``seqs``; residual after each block
    in ``layers`` at several positions per row: [B, P, n_layers_sel, d] float32 on CPU."""
    ids, mask = _pad_left(seqs, pad_id)
    T = ids.shape[1]
    pos = torch.tensor([[T - len(s) + p for p in ps] for s, ps in zip(seqs, positions)], dtype=torch.long)
    return backend.residuals(ids, mask, pos, layers).permute(1, 2, 0, 3)  # [L, B, P, d] -> [B, P, L, d]


class Caches:
    """In-process reuse across configs (the ablation): generations by (prompt ids, decoding, sample
    seed), activations by (prompt ids, generated ids). A cached generation made with a larger token
    budget serves a smaller one by truncation: greedy decoding and per-row sampling both produce the
    shorter run's tokens as a prefix of the longer run's."""

    def __init__(self):
        self.gen: dict[tuple, tuple[list[int], int, bool]] = {}
        self.act: dict[tuple, torch.Tensor] = {}
        self.generated = 0   # generations actually run
        self.forwarded = 0   # sequences actually forwarded for extraction

    def get_gen(self, key, n: int):
        hit = self.gen.get(key)
        if hit is None:
            return None
        ids, budget, ended = hit
        if budget >= n:
            return ids[:n]
        return ids if ended else None

    def put_gen(self, key, ids: list[int], n: int, eos: set[int]):
        ended = bool(ids) and ids[-1] in eos
        old = self.gen.get(key)
        if old is None or n > old[1]:
            self.gen[key] = (ids, n, ended)


def _gen_key(prompt_ids: list[int], cfg: GenerationConfig, seed: int | None) -> tuple:
    return (tuple(prompt_ids), cfg.decoding_key(), seed)


def collect(lm, backend, cfg: GenerationConfig, units: dict[str, list[Item]], caches: Caches,
            batch_size: int, chat: bool, log=None) -> dict[str, dict]:
    """Generate + extract every item of ``units``; returns unit -> {"mid": [L,d], "last": [L,d] weighted
    means, "records": [...]}."""
    tok = lm.tokenizer
    eos = eos_ids(lm)
    flat = [(u, it) for u, items in units.items() for it in items]
    prompt_ids = {it: render(tok, it.prompt, chat) for _, it in flat}
    seeds = {it: (sample_seed(cfg, it) if cfg.do_sample else None) for _, it in flat}
    # 1. generations not in the cache, in batches of similar prompt length
    todo, seen = [], set()
    for _, it in flat:
        key = _gen_key(prompt_ids[it], cfg, seeds[it])
        if caches.get_gen(key, cfg.max_new_tokens) is None and key not in seen:
            seen.add(key)
            todo.append(it)
    todo.sort(key=lambda it: len(prompt_ids[it]))
    for b in range(0, len(todo), batch_size):
        chunk = todo[b:b + batch_size]
        t0 = time.perf_counter()
        gens = generate_batch(lm, [prompt_ids[it] for it in chunk], cfg,
                              seeds=[seeds[it] for it in chunk] if cfg.do_sample else None)
        for it, g in zip(chunk, gens):
            caches.put_gen(_gen_key(prompt_ids[it], cfg, seeds[it]), g, cfg.max_new_tokens, eos)
        caches.generated += len(chunk)
        if log:
            log(f"generated {min(b + batch_size, len(todo))}/{len(todo)} ({time.perf_counter() - t0:.1f}s)")
    gen_ids = {it: caches.get_gen(_gen_key(prompt_ids[it], cfg, seeds[it]), cfg.max_new_tokens) for _, it in flat}
    # 2. activations not in the cache: one forward over prompt + generation, all layers, both positions
    akeys = {it: (tuple(prompt_ids[it]), tuple(gen_ids[it])) for _, it in flat}
    need = sorted({akeys[it] for _, it in flat if akeys[it] not in caches.act}, key=lambda k: len(k[0]) + len(k[1]))
    pad = _pad_id(lm)
    for b in range(0, len(need), batch_size):
        chunk = need[b:b + batch_size]
        seqs = [list(p) + list(g) for p, g in chunk]
        pos = [[positions_for(len(p), len(g))[k] for k in POSITIONS] for p, g in chunk]
        acts = read_positions(backend, seqs, pos, pad)  # [B, 2, L, d]
        for k, a in zip(chunk, acts):
            caches.act[k] = a.clone()
        caches.forwarded += len(chunk)
    # 3. weighted means per unit (weight = repeats of an identical greedy generation)
    result = {}
    for u, items in units.items():
        acc = None
        wsum = 0
        records = []
        for it in items:
            a = caches.act[akeys[it]].double() * it.weight
            acc = a if acc is None else acc + a
            wsum += it.weight
            p, g = prompt_ids[it], gen_ids[it]
            records.append({"template": it.template, "sample": it.sample, "weight": it.weight,
                            "prompt": it.prompt, "prompt_len": len(p), "gen_len": len(g),
                            "hit_eos": bool(g) and g[-1] in eos, "positions": positions_for(len(p), len(g)),
                            "seed": seeds[it], "text": tok.decode(g, skip_special_tokens=True),
                            "generated_ids": g})
        mean = (acc / wsum).float()
        result[u] = {"mid": mean[0], "last": mean[1], "records": records}
    return result
