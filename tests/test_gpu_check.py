"""scripts/gpu_check.sh, shrunk with --small so it runs on the CPU: every part runs and the
JSON and the Markdown table hold real numbers."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_small_writes_json_and_markdown_with_real_numbers(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--small", "--arch", "cpu", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    tests = result["tests"]
    assert tests["exit_code"] == 0 and tests["tests"] >= 5 and tests["failures"] == tests["errors"] == 0
    for part in (result["builtin"], result["object"]):
        assert part["steps"] >= 1 and part["rays_per_s"] > 0 and part["samples_per_ray"] > 0
        assert len(part["curve"]) >= 2 and all(math.isfinite(v) and v > 5.0 for _, v, _ in part["curve"])
        assert "seconds_to_25db" in part and "seconds_to_30db" in part  # None: not reached in the small budget
    assert [row["samples"] for row in result["compositing"]] == [64, 128, 256]
    assert all(row["fast_fwd_ms"] > 0 and row["torch_fwd_bwd_ms"] > 0 for row in result["compositing"])
    assert result["step"] and all(p["ms_per_step"] > 0 and p["rays_per_s"] > 0 for p in result["step"].values())
    table = (tmp_path / "gpu_check.md").read_text()
    assert re.search(r"\| kernel \+ zero-copy tests \| .* \| \d+ passed, 0 failed", table)
    assert len(re.findall(r"\d+\.\d\d dB after \d+ steps", table)) == 2
    assert len(re.findall(r"\| compositing, \d+ rays x \d+ samples \|", table)) == 3
    assert re.search(r"\| training step, .* \| \d+\.\d ms, \d+ rays/s", table)
