"""Where an artifact built for another CPU runs: ``qemu`` (user-mode emulation here) or
``adb[:SERIAL]`` (a phone). Both run the artifact's own ``pf_run`` program, so outputs are
exactly what the device computes, written like ``polyfuse run`` writes them."""
from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .build.artifact import MANIFEST, WEIGHTS
from .build.compiler import LIBRARY, RUNNER
from .errors import InputError, PolyfuseError
from .targets import Target

REMOTE_ROOT = "/data/local/tmp/polyfuse"
DEVICES = "qemu, adb, adb:SERIAL"


class DeviceError(PolyfuseError):
    """A device is missing, unreachable, or its pf_run failed."""


def _check(r: subprocess.CompletedProcess, what: str) -> str:
    if r.returncode != 0:
        lines = (r.stderr or r.stdout or "").strip().splitlines()
        raise DeviceError(f"{what} failed (exit {r.returncode}): {lines[-1] if lines else 'no output'}")
    return r.stdout


class Qemu:
    """pf_run under qemu-user with the cross compiler's sysroot (target.emulator)."""

    def __init__(self, target: Target):
        if not target.emulator:
            raise InputError(f"target {target.name} has no emulator to run it here; use --device adb")
        exe, *args = target.emulator
        self.exe = shutil.which(exe) or shutil.which(exe + "-static")
        if not self.exe:
            raise DeviceError(f"--device qemu: {exe} not found; install it (apt-get install qemu-user)")
        self.args = args
        sysroot = next((a for a in args if a.startswith("/")), None)
        if sysroot and not Path(sysroot).is_dir():
            raise DeviceError(f"--device qemu: the cross sysroot {sysroot} is missing; install it "
                              "(apt-get install g++-aarch64-linux-gnu)")

    def _pf_run(self, art: Path, *args: str, what: str, profile: bool = False) -> str:
        env = dict(os.environ, PF_PROFILE="1") if profile else None  # qemu-user passes it to the guest
        r = subprocess.run([self.exe, *self.args, str(art / RUNNER), str(art), *args], capture_output=True, text=True,
                           env=env)
        return _check(r, what) + (r.stderr if profile else "")

    def run(self, art: Path, inputs: list[tuple[str, Path]], out: Path, extra=(), profile: bool = False) -> str:
        """pf_run's output; with ``profile``, run with PF_PROFILE=1 and its pf_profile lines appended."""
        ins = [w for name, path in inputs for w in ("--input", f"{name}={path}")]
        return self._pf_run(art, *ins, "-o", str(out), *extra, what="pf_run under qemu", profile=profile)

    def describe(self) -> str:
        return f"qemu-aarch64 emulating arm64 on {platform.machine()} (emulated times, not a phone's)"

    def write_packed(self, art: Path) -> None:
        """The artifact's weights.bin.packed, written by its own pf_run (pf_run --write-packed)."""
        self._pf_run(art, "--write-packed", what="pf_run --write-packed under qemu")


class Adb:
    """Pushes the artifact to /data/local/tmp/polyfuse/NAME, runs pf_run through adb shell,
    pulls the outputs. Every word of the shell command is quoted: names come from the model."""

    def __init__(self, serial: str | None):
        self.exe = shutil.which("adb")
        if not self.exe:
            raise DeviceError("--device adb: adb not found; install it (apt-get install adb) or put it on PATH")
        self.base = [self.exe] + (["-s", serial] if serial else [])
        r = subprocess.run(self.base + ["get-state"], capture_output=True, text=True)
        if r.returncode != 0 or r.stdout.strip() != "device":
            raise DeviceError(f"--device adb{':' + serial if serial else ''}: no device connected "
                              f"({(r.stderr or r.stdout).strip() or 'adb get-state failed'}); connect one, "
                              "enable USB debugging, check `adb devices`")

    def _adb(self, *args: str, what: str, stderr: bool = False) -> str:
        """adb's output (with ``stderr``, its error stream appended: adb keeps a shell command's two
        apart on devices with the shell protocol and merges them on older ones)."""
        r = subprocess.run(self.base + list(args), capture_output=True, text=True)
        return _check(r, what) + (r.stderr if stderr else "")

    def shell(self, *words: str, what: str, stderr: bool = False) -> str:
        return self._adb("shell", " ".join(shlex.quote(w) for w in words), what=what, stderr=stderr)

    def describe(self) -> str:
        """The phone's model and SoC, as its properties name them (asked once per phone)."""
        return _describe_phone(tuple(self.base))

    def run(self, art: Path, inputs: list[tuple[str, Path]], out: Path, extra=(), profile: bool = False) -> str:
        remote = f"{REMOTE_ROOT}/{_remote_name(art)}"
        self.shell("rm", "-rf", remote, what="adb shell rm")
        self.shell("mkdir", "-p", f"{remote}/in", what="adb shell mkdir")
        for f in (MANIFEST, WEIGHTS, LIBRARY, RUNNER):
            self._adb("push", str(art / f), f"{remote}/{f}", what=f"adb push {f}")
        args = []
        for k, (name, path) in enumerate(inputs):
            self._adb("push", str(path), f"{remote}/in/{k}.npy", what=f"adb push input {name!r}")
            args += ["--input", f"{name}={remote}/in/{k}.npy"]
        self.shell("chmod", "755", f"{remote}/{RUNNER}", what="adb shell chmod")
        env = ("env", "PF_PROFILE=1") if profile else ()
        stdout = self.shell(*env, f"{remote}/{RUNNER}", remote, *args, "-o", f"{remote}/out", *extra,
                            what="pf_run on the device", stderr=profile)
        with tempfile.TemporaryDirectory(prefix="polyfuse-adb-") as tmp:
            self._adb("pull", f"{remote}/out", tmp, what="adb pull")
            pulled = Path(tmp) / "out"
            files = sorted(pulled.iterdir()) if pulled.is_dir() else []
            out.mkdir(parents=False, exist_ok=True)
            for f in files:
                shutil.copy2(f, out / f.name)
        return stdout.replace(f"{remote}/out", str(out))


@functools.lru_cache(maxsize=None)
def _describe_phone(base: tuple) -> str:
    props = []
    for prop in ("ro.product.model", "ro.soc.model", "ro.board.platform"):
        r = subprocess.run([*base, "shell", f"getprop {prop}"], capture_output=True, text=True)
        v = r.stdout.strip() if r.returncode == 0 else ""
        if v and v not in props:
            props.append(v)
    if not props:
        return "adb device"
    model, *soc = props
    return f"{model} ({', '.join(soc)})" if soc else model


def _remote_name(art: Path) -> str:
    """The artifact folder's name, made safe for a remote path."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in art.resolve().name).lstrip(".")
    return name or "model"


def check_device_use(target: Target, device: str | None, command: str) -> None:
    """The one rule for commands that run a target's code (bench, bench --profile, tune, calibrate): a
    device exactly when the code does not run here. A target with a device variant (android-gpu:
    here on this machine's OpenCL, or built for a phone) may take either."""
    if device and target.loads_here and not target.device_variant:
        raise InputError(f"{command}: target {target.name}'s code runs here; leave out --device")
    if not device and not target.loads_here:
        raise InputError(f"{command}: target {target.name}'s code runs on a device: add --device adb[:SERIAL] "
                         "(a phone) or --device qemu (emulated: its times are not a phone's)")


def get_device(spec: str, target: Target):
    """``qemu``, ``adb`` or ``adb:SERIAL`` for ``target``; InputError for anything else."""
    kind, _, serial = spec.partition(":")
    if kind == "qemu" and not serial:
        return Qemu(target)
    if kind == "adb":
        return Adb(serial or None)
    raise InputError(f"--device {spec!r}: unknown device (one of: {DEVICES})")
