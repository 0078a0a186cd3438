"""Rebuild an embedded model's tokenizer from its GGUF metadata, where the installed transformers' GGUF
converter gets it wrong.

transformers 4.57.6 (the paper's GPU stack) converts the embedded GGUFs with faults that change every
number downstream:
* SmolLM2-135M-Instruct: only the special-token metadata is wrong (eos = bos = pad = <|im_start|>, and a
  BOS it never had). ``repair_special_tokens`` restores them from the GGUF's own fields.
* Gemma-3-270M: the whole BPE is wrong. The GGUF ships no merges; 4.57 recovers them ordered by the
  tokens' scores, but Gemma's scores do not follow its merge order (the file's token order does), so
  words split into pieces (LM loss 6.6 on plain English). ``gemma_sentencepiece_bpe`` rebuilds the BPE
  with merges in file order, the reading transformers 5.x (the CPU lock) uses.

Both repairs are checked on the paper stack against token ids produced by the CPU stack's converter
(tests/data/gguf_token_ids.json, written by ``python -m tools.gguf_token_ids``).
"""
from __future__ import annotations

from pathlib import Path

SPACE = "\u2581"  # SentencePiece's visible space


def read_tokenizer_fields(gguf: Path) -> dict:
    """The ``tokenizer.ggml.*`` fields of a GGUF file (short names: tokens, scores, token_type, ...)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    prefix = "tokenizer.ggml."
    return {name[len(prefix):]: field.contents() for name, field in reader.fields.items()
            if name.startswith(prefix)}


def repair_special_tokens(tok, fields: dict) -> dict:
    """Set bos/eos/pad and add_bos from the GGUF's own tokenizer metadata (what llama.cpp reads)."""
    tokens = fields["tokens"]
    fixed: dict = {}
    for role, attr in (("bos", "bos_token"), ("eos", "eos_token"), ("padding", "pad_token")):
        idx = fields.get(f"{role}_token_id")
        if idx is not None:
            setattr(tok, attr, tokens[int(idx)])
            fixed[attr] = tokens[int(idx)]
    add_bos = bool(fields.get("add_bos_token") or False)
    if hasattr(tok, "add_bos_token"):
        tok.add_bos_token = add_bos
    if hasattr(tok, "update_post_processor"):
        tok.update_post_processor()
    fixed["add_bos_token"] = add_bos
    return fixed


def merges_in_file_order(tokens: list[str]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary that ships none.

    Every way of cutting a token into two tokens of the vocabulary is a merge producing it. A token that
    comes earlier in the file was learned earlier, so its merges rank first; among the cuts of one token,
    the longer left part ranks first (ties: lower ids first)."""
    index = {t: i for i, t in enumerate(tokens)}
    merges = []
    for tok in sorted(index, key=index.get):  # a token spelled twice ranks by its last position
        cuts = [(tok[:k], tok[k:]) for k in range(1, len(tok)) if tok[:k] in index and tok[k:] in index]
        cuts.sort(key=lambda lr: (-len(lr[0]), index[lr[0]], index[lr[1]]))
        merges.extend(cuts)
    return merges


def gemma_sentencepiece_bpe(fields: dict):
    """A ``PreTrainedTokenizerFast`` for a Gemma GGUF: byte-fallback BPE, no prefix space, spaces read as
    SPACE, merges in file order, control tokens special, a BOS in front when the file says so."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    # Tokens made only of spaces are stored with real spaces; the normalizer turns text spaces into SPACE.
    tokens = [SPACE * len(t) if t and not t.strip(" ") else t for t in fields["tokens"]]
    vocab = {t: i for i, t in enumerate(tokens)}
    special = {role: tokens[int(fields[f"{role}_token_id"])] for role in ("bos", "eos", "unknown", "padding")
               if fields.get(f"{role}_token_id") is not None}
    backend = Tokenizer(BPE(vocab=vocab, merges=merges_in_file_order(tokens), unk_token=special.get("unknown"),
                            fuse_unk=True, byte_fallback=True, dropout=None))
    backend.normalizer = normalizers.Replace(" ", SPACE)
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    backend.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    types = fields.get("token_type") or []
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t, ty in zip(tokens, types) if int(ty) == 3])  # 3: CONTROL
    user = [AddedToken(t, normalized=False, special=False) for t, ty in zip(tokens, types) if int(ty) == 4]
    if user:  # 4: USER_DEFINED, matched whole in the text by llama.cpp
        backend.add_tokens(user)
    if fields.get("add_bos_token") and "bos" in special:
        bos = special["bos"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=special.get("bos"), eos_token=special.get("eos"),
        unk_token=special.get("unknown"), pad_token=special.get("padding"))
