"""The docker step of `invoke env-check`: Dockerfile.mps-free built for real on a Debian bookworm base made here
with debootstrap (no image registry is reachable), then the smoke checks, `invoke reproduce --models embedded-one`
and `invoke verify` inside the image with --network none."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from repro.artifacts import sha256_file

from tools.envcheck_common import Step, _run, _say, _tail, parse_lock, parse_lock_hashes

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE_TAG = "emogeo-envcheck-base:bookworm"
IMAGE_TAG = "emogeo:envcheck"


# --------------------------------------------------------------------------------------- docker
class DockerEnv:
    """Finds or installs docker/debootstrap, starts dockerd when none runs, and stops what it started."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.daemon: subprocess.Popen | None = None
        self.docker = os.environ.get("EMOGEO_DOCKER") or (
            "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker") or "docker")

    def ensure_tools(self) -> str | None:
        """None when docker, dockerd and debootstrap are there; else why they cannot be had."""
        need = [pkg for tool, pkg in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"))
                if not shutil.which(tool)]
        if not Path(self.docker).exists() and not shutil.which(self.docker):
            need.append("docker.io")
        if not need:
            return None
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return f"missing {sorted(set(need))} and cannot apt-get install them (needs root on Debian)"
        _say(f"  installing {' '.join(sorted(set(need)))} (Debian packages) ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(["apt-get", "update", "-qq"], env=env, timeout=600)
        r = _run(["apt-get", "install", "-y", "-qq", *sorted(set(need))], env=env, timeout=900)
        if r.returncode:
            return "apt-get install failed:\n" + _tail(r.stdout + r.stderr)
        self.docker = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
        return None

    def docker_ok(self) -> bool:
        return _run([self.docker, "info"], timeout=30).returncode == 0

    def start(self) -> str | None:
        if self.docker_ok():
            return None
        log = open(self.workdir / "dockerd.log", "w")
        self.daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _say(f"  started dockerd (pid {self.daemon.pid}); log {self.workdir / 'dockerd.log'}")
        for _ in range(60):
            if self.daemon.poll() is not None:
                return "dockerd exited:\n" + _tail((self.workdir / "dockerd.log").read_text())
            if self.docker_ok():
                return None
            time.sleep(1)
        return "dockerd did not answer within 60 s:\n" + _tail((self.workdir / "dockerd.log").read_text())

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            _say(f"  stopped dockerd (pid {self.daemon.pid})")

    def image_exists(self, tag: str) -> bool:
        return _run([self.docker, "image", "inspect", tag]).returncode == 0


def _pip_cert() -> str | None:
    for cand in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if cand and Path(cand).is_file():
            return cand
    return None


def _stage_torch_wheel() -> str:
    """Put the torch CPU wheel whose sha256 cpu.lock pins into .docker-wheels/ (git-ignored)."""
    want = parse_lock_hashes((ROOT / "requirements" / "cpu.lock").read_text())["torch"]
    version = parse_lock((ROOT / "requirements" / "cpu.lock").read_text())["torch"]
    dest = ROOT / ".docker-wheels"
    dest.mkdir(exist_ok=True)
    pattern = f"torch-{version}-*.whl"
    for have in dest.glob(pattern):
        if sha256_file(have) in want:
            return f"{have.name} (already staged)"
    dirs = [d for d in re.split(r"[\s]+", os.environ.get("PIP_FIND_LINKS", "")) if d] + ["/opt/wheels"]
    for d in dirs:
        for cand in Path(d).glob(pattern) if Path(d).is_dir() else []:
            if sha256_file(cand) in want:
                target = dest / cand.name
                try:
                    os.link(cand, target)
                except OSError:
                    shutil.copy2(cand, target)
                return f"{cand.name} from {d}"
    raise FileNotFoundError(f"no {pattern} with the sha256 of requirements/cpu.lock in .docker-wheels/ or "
                            f"{dirs} (docs/ENVIRONMENTS.md: where to get the CPU wheel)")


def _build_base(env: DockerEnv, rebuild: bool) -> str:
    if env.image_exists(BASE_IMAGE_TAG) and not rebuild:
        return f"{BASE_IMAGE_TAG} (cached from an earlier run)"
    rootfs = env.workdir / "rootfs"
    t0 = time.perf_counter()
    r = _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
              "bookworm", str(rootfs)], timeout=1200)
    if r.returncode:
        raise RuntimeError("debootstrap failed:\n" + _tail(r.stdout + r.stderr))
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (rootfs / junk).glob("*"):
            if p.is_file():
                p.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run([env.docker, "import", "-c", "ENV LANG=C.UTF-8", "-", BASE_IMAGE_TAG],
                         stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    if imp.returncode or tar.returncode:
        raise RuntimeError("docker import failed:\n" + imp.stderr)
    return f"{BASE_IMAGE_TAG} from debootstrap --variant=minbase bookworm ({time.perf_counter() - t0:.0f} s)"


def step_docker(container: str, rebuild_base: bool) -> list[Step]:
    steps: list[Step] = []
    workdir = Path(tempfile.mkdtemp(prefix="emogeo-envcheck-"))
    env = DockerEnv(workdir)
    t0 = time.perf_counter()
    try:
        why = env.ensure_tools() or env.start()
        if why:
            return [Step("docker", "FAIL", why, time.perf_counter() - t0)]
        t = time.perf_counter()
        try:
            base = _build_base(env, rebuild_base)
            wheel = _stage_torch_wheel()
        except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
            return [Step("docker-base", "FAIL", str(exc), time.perf_counter() - t)]
        steps.append(Step("docker-base", "PASS", f"{base}; torch wheel {wheel}", time.perf_counter() - t))

        cmd = [env.docker, "build", "--progress=plain", "--network", "host", "-f", "Dockerfile.mps-free",
               "--build-arg", f"BASE={BASE_IMAGE_TAG}", "-t", IMAGE_TAG, "."]
        if cert := _pip_cert():
            cmd[2:2] = ["--secret", f"id=pip_cert,src={cert}"]
        if os.environ.get("PIP_INDEX_URL"):
            conf = workdir / "pip.conf"
            conf.write_text(f"[global]\nindex-url = {os.environ['PIP_INDEX_URL']}\n")
            cmd[2:2] = ["--secret", f"id=pip_conf,src={conf}"]
        _say("  docker build -f Dockerfile.mps-free ... (log: %s)" % (workdir / "build.log"))
        t = time.perf_counter()
        r = _run(cmd, cwd=ROOT, env=dict(os.environ, DOCKER_BUILDKIT="1"), timeout=3600)
        (workdir / "build.log").write_text(r.stdout + r.stderr)
        build_s = time.perf_counter() - t
        if r.returncode:
            return steps + [Step("docker-build", "FAIL", _tail(r.stdout + r.stderr, 40), build_s)]
        size = int(_run([env.docker, "image", "inspect", "-f", "{{.Size}}", IMAGE_TAG]).stdout.strip() or 0)
        base_size = int(_run([env.docker, "image", "inspect", "-f", "{{.Size}}", BASE_IMAGE_TAG]).stdout.strip()
                        or 0)
        steps.append(Step("docker-build", "PASS", f"Dockerfile.mps-free built in {build_s:.0f} s; image "
                          f"{size / 1e9:.2f} GB (base {base_size / 1e9:.2f} GB)", build_s))
        steps += _container_runs(env, container)
        return steps
    finally:
        env.stop()
        shutil.rmtree(workdir / "rootfs", ignore_errors=True)


def _container_runs(env: DockerEnv, container: str) -> list[Step]:
    if container == "none":
        return [Step("docker-run", "SKIP", "--container none")]
    run = [env.docker, "run", "--rm", "--network", "none"]
    t = time.perf_counter()
    r = _run(run + [IMAGE_TAG, "--list"], timeout=300)
    smoke = _run(run + ["--entrypoint", "python", IMAGE_TAG, "-c",
                        "import torch, transformers, transformer_lens, gguf, repro, analysis; "
                        "assert torch.__version__ == '2.13.0+cpu', torch.__version__; "
                        "from repro.models import resolve; from repro.loading import load_model; "
                        "lm = load_model(resolve('smollm2-135m-instruct')); "
                        "ids = lm.tokenizer('I feel calm.', return_tensors='pt').input_ids; "
                        "print('forward ok', tuple(lm.model(ids).logits.shape))"], timeout=900)
    if r.returncode or smoke.returncode:
        return [Step("docker-run", "FAIL", _tail(r.stdout + r.stderr + smoke.stdout + smoke.stderr, 40),
                     time.perf_counter() - t)]
    steps = [Step("docker-smoke", "PASS", "in the image, --network none, uid 1000: `invoke --list`; imports; "
                  "embedded SmolLM2 loads from the build-time cache and runs a forward pass "
                  f"({smoke.stdout.strip().splitlines()[-1]})", time.perf_counter() - t)]
    if container == "smoke":
        return steps
    volume = "emogeo-envcheck-artifacts"
    # The runs manifest (checksums/runs.sha256) that reproduce writes must reach the verify container too:
    # runs without it fail integrity. A new named volume starts as a copy of the image's checksums/ (the
    # committed reference manifest), so mounting it hides nothing.
    sums = "emogeo-envcheck-checksums"
    _run([env.docker, "volume", "rm", "-f", volume, sums])
    try:
        # The image's default CMD is the README's main job (the three-family study); here the one-model set runs
        # every stage in the image within CI's time (the three-family study itself runs in CI outside the image).
        for task in (["reproduce", "--models", "embedded-one"], ["verify"]):
            label = "invoke " + " ".join(task)
            _say(f"  docker run {IMAGE_TAG} {' '.join(task)} ...")
            t = time.perf_counter()
            r = _run(run + ["-v", f"{volume}:/app/artifacts", "-v", f"{sums}:/app/checksums", IMAGE_TAG, *task],
                     timeout=3600)
            if r.returncode:
                steps.append(Step(f"docker-{task[0]}", "FAIL",
                                  f"{label} exited {r.returncode}:\n" + _tail(r.stdout + r.stderr, 40),
                                  time.perf_counter() - t))
                return steps
            steps.append(Step(f"docker-{task[0]}", "PASS",
                              f"{label} passed in the image, --network none", time.perf_counter() - t))
    finally:
        _run([env.docker, "volume", "rm", "-f", volume, sums])
    return steps
