"""bench/gpu_check.py is a one-command check for GPU machines: without CUDA it must skip cleanly (exit 0, a message,
a JSON last line), so it can be run anywhere."""

import json
import os
import subprocess
import sys


def test_gpu_check_skips_cleanly_without_cuda(repo, tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(
        [sys.executable, str(repo / "bench" / "gpu_check.py"), "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert "no CUDA device" in lines[0]
    assert json.loads(lines[-1]) == {"skipped": "no CUDA device"}
