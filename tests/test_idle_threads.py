"""Good neighbours: after a run, polyfuse's worker threads sleep instead of spinning.

The pool's workers spin PF_SPIN_US microseconds (default 300) after each parallel loop, then
block (kernels/pf_pool.cpp). Measured from outside, by the CPU time Linux charges each thread
(/proc/self/task/TID/stat, in clock ticks): idle for 0.5 s after a run, the workers may use a
few ticks at most; a pool that kept spinning would be charged ~0.5 s per worker. With
PF_SPIN_US set to 1 s they do spin through the pause, so the measurement can tell the two apart.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from helpers import model

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import polyfuse
    m = polyfuse.load(sys.argv[1], threads=2)
    x = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    main = os.getpid()

    def worker_ticks():
        total = 0
        for tid in os.listdir("/proc/self/task"):
            if int(tid) == main:
                continue
            try:
                f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a thread that ended
            total += int(f[11]) + int(f[12])  # utime + stime
        return total

    for _ in range(20):
        m.run(None, {"x": x})
    before = worker_ticks()
    time.sleep(0.5)
    print(worker_ticks() - before, os.sysconf("SC_CLK_TCK"))
""")


@pytest.fixture(scope="module")
def matmul_artifact(tmp_path_factory):
    import polyfuse

    w = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32)
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [256, 256])],
              [("y", np.float32, None)], [("w", w)])
    out = tmp_path_factory.mktemp("idle") / "mm"
    polyfuse.compile(m, threads=2, output_dir=out)
    return out


def _idle_ticks(artifact, spin_us: str | None) -> tuple[int, int]:
    env = {k: v for k, v in os.environ.items() if k != "PF_SPIN_US"}
    if spin_us is not None:
        env["PF_SPIN_US"] = spin_us
    res = subprocess.run([sys.executable, "-c", CHILD, str(artifact)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    ticks, hz = res.stdout.split()
    return int(ticks), int(hz)


def test_workers_sleep_after_a_run(matmul_artifact):
    ticks, hz = _idle_ticks(matmul_artifact, None)
    assert ticks <= 0.05 * hz, f"idle workers used {ticks / hz:.2f} s of CPU in 0.5 s after a run"


def test_spin_setting_is_honoured(matmul_artifact):
    # PF_SPIN_US=1000000: the one worker spins through the 0.5 s pause (the check above can fail)
    ticks, hz = _idle_ticks(matmul_artifact, "1000000")
    assert ticks >= 0.25 * hz, f"a worker told to spin 1 s used only {ticks / hz:.2f} s of CPU in 0.5 s"
