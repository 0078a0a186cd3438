"""The machine a number came from, and torch threads that fit it.

Timings and the `auto` generation precision depend on the CPU (this project's machines vary between AMD EPYC
with AVX512-BF16 and no native fp16 and Intel Xeon with AVX512-FP16), so ``cpu_info`` is recorded in every
artifact (``repro.artifacts.environment``) and beside every benchmark figure.

Threads: torch's default is every core of the machine, which oversubscribes when the process may use fewer
(a CPU affinity mask, `taskset`, a container's cpuset) - measured 8x slower generation with one competing
process on 2 cores. ``configure_threads`` sets the count from the cores this process may actually run on
(``os.sched_getaffinity``), or from ``--threads`` / ``$EMOGEO_THREADS``.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache

# CPU flags that change what is fast (or available) for fp16/bf16/int8 matmuls.
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16",
                     "amx_fp16", "amx_int8", "amx_tile")
THREADS_ENV = "EMOGEO_THREADS"
NONDETERMINISTIC_ENV = "EMOGEO_NONDETERMINISTIC"  # "1": --nondeterministic (leave torch's CUDA defaults alone)
CUBLAS_WORKSPACE = ":4096:8"  # what torch's reproducibility notes ask for with deterministic cuBLAS


def available_cores() -> int:
    """Cores this process may run on (its affinity mask), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """CPU model, cores (total and available to this process) and the flags that matter for matmuls."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux
        pass
    model = model or platform.processor() or None
    return {"model": model, "arch": platform.machine(), "cores_total": os.cpu_count(),
            "cores_available": available_cores(), "flags": [f for f in INTERESTING_FLAGS if f in flags]}


def thread_count(requested: int | str | None = None) -> int:
    """The torch thread count to use: ``requested`` (or $EMOGEO_THREADS) if given, else the available cores."""
    value = requested if requested not in (None, "") else os.environ.get(THREADS_ENV)
    if value in (None, ""):
        return available_cores()
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--threads {value!r}: give a positive whole number of threads") from None
    if n < 1:
        raise ValueError(f"--threads {value!r}: give a positive whole number of threads")
    return n


def configure_threads(requested: int | str | None = None) -> int:
    """Set torch's intra-op threads to ``thread_count(requested)``; return the count (recorded in artifacts)."""
    import torch

    n = thread_count(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def configure_determinism(device: str) -> dict:
    """On CUDA, before the first kernel: deterministic algorithms (warn_only: an op without a deterministic kernel
    warns instead of stopping a long run), ``CUBLAS_WORKSPACE_CONFIG``, no cuDNN autotuning; ``--nondeterministic``
    (``$EMOGEO_NONDETERMINISTIC=1``) leaves torch's defaults. Returns ``determinism_record()``, which every artifact
    carries (repro.artifacts.environment), so two GPU runs can be told apart or shown identical. On a CPU nothing
    is changed: torch's CPU kernels give the same bits for the same thread count (recorded too)."""
    import torch

    if str(device).startswith("cuda") and os.environ.get(NONDETERMINISTIC_ENV) != "1":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return determinism_record()


def determinism_record() -> dict:
    import torch

    return {"requested": "nondeterministic (--nondeterministic)" if os.environ.get(NONDETERMINISTIC_ENV) == "1"
            else "deterministic on CUDA",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic)}
