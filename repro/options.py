"""Every user-facing option checked before any compute: one line naming the fix, never a traceback.

Library entry points (extract, run_generation, run_ablation, run_steering, the reproduce pipeline) call these
first, so a bad value fails in milliseconds, not after minutes of other stages; `tasks.py` turns
``OptionError`` into ``error: <line>`` and exit 2. Values are taken exactly as documented (``fp16``, not
``FP16``): a near miss is named, never guessed.
"""
from __future__ import annotations

DTYPES = ("fp16", "bf16", "fp32")  # comprehension extraction
PRECISIONS = ("auto", "fp16", "bf16", "fp32", "int8", "nf4")  # generation, ablation, steering
BACKENDS = ("auto", "tl", "hf")
PRESETS = ("protocol_matched", "loose")
STEER_LAYERS = ("all", "best")


class OptionError(ValueError):
    """An option's value is not one emogeo accepts (the message names the option and the fix)."""


def choice(value, allowed: tuple[str, ...], flag: str) -> str:
    """``value`` if it is one of ``allowed``; else one line listing them (and the near miss, if any)."""
    if isinstance(value, str) and value in allowed:
        return value
    near = [a for a in allowed if isinstance(value, str) and a.lower() == value.strip().lower()]
    hint = f" (did you mean {near[0]}?)" if near else ""
    raise OptionError(f"--{flag} {value!r}: choose one of {', '.join(allowed)}{hint}")


def count(value, flag: str, minimum: int = 1) -> int | None:
    """A whole number >= ``minimum`` (None/"" stay None: the default applies). 0, -5 and "abc" are refused,
    never silently replaced by a default."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise OptionError(f"--{flag} {value!r}: give a whole number >= {minimum}")
    try:
        n = int(value)
        if isinstance(value, float) and n != value:
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(f"--{flag} {value!r}: give a whole number >= {minimum}") from None
    if n < minimum:
        raise OptionError(f"--{flag} {n}: must be at least {minimum}")
    return n


def device(value: str | None) -> str | None:
    """cpu, cuda or cuda:N (None: the default device). cuda on a machine without CUDA is refused here, before
    a model is loaded."""
    if value is None or value == "":
        return None
    v = str(value)
    base, _, index = v.partition(":")
    if base not in ("cpu", "cuda") or (index and (base != "cuda" or not index.isdigit())):
        raise OptionError(f"--device {value!r}: choose cpu, cuda or cuda:N")
    if base == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise OptionError(f"--device {value}: no CUDA device is visible here; use --device cpu "
                              "(or run on a GPU machine)")
        if index and int(index) >= torch.cuda.device_count():
            raise OptionError(f"--device {value}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return v
