#!/usr/bin/env bash
# Regenerate the hashed locks in requirements/ from their *.in files, reproducibly:
#   - the locking tool is pinned: uv from requirements/tools.lock (hashed), in a cache venv;
#   - the index is frozen in time: UV_EXCLUDE_NEWER (below) hides every file uploaded later;
#   - the target is fixed: CPython 3.11 on x86_64 Linux (manylinux_2_28), whatever runs this.
# uv resolves from the index's metadata alone, so torch 2.6.0 (cu124, ~770 MB) is never downloaded.
#
# usage: bash scripts/lock.sh            rewrite requirements/{cpu,cuda,models,tools}.lock
#        bash scripts/lock.sh --check    regenerate into a temp dir and fail if any lock differs
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
[ "${1:-}" = "--check" ] && check=1

if ! "$TOOLS/bin/uv" --version 2>/dev/null | grep -qx "uv $UV_VERSION.*"; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements/tools.lock
fi
UV="$TOOLS/bin/uv"

out=requirements
if [ $check = 1 ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

compile() {  # compile IN OUT [extra uv args...]
    local src=$1 dst=$2
    shift 2
    UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" \
        "$UV" pip compile "$src" -o "$dst" --quiet --generate-hashes --no-emit-find-links \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 "$@"
}

compile requirements/cpu.in "$out/cpu.lock" \
    --override requirements/cpu.overrides.txt --find-links "$TORCH_CPU_WHEELS"
compile requirements/cuda.in "$out/cuda.lock"
compile requirements/models.in "$out/models.lock" --no-deps
UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" \
    "$UV" pip compile requirements/tools.in -o "$out/tools.lock" --quiet --generate-hashes --universal

if [ $check = 1 ]; then
    rc=0
    for f in cpu cuda models tools; do
        if ! diff -u "requirements/$f.lock" "$out/$f.lock"; then
            echo "lock drift: requirements/$f.lock is not what scripts/lock.sh gives" >&2
            rc=1
        fi
    done
    [ $rc = 0 ] && echo "locks reproduce: requirements/{cpu,cuda,models,tools}.lock"
    exit $rc
fi
echo "wrote requirements/{cpu,cuda,models,tools}.lock"
