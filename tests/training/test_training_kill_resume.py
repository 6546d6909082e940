"""A training process killed with SIGKILL resumes from its last checkpoint and ends where a clean run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_toys import toy_config, toy_data, toy_model, weights

from workbench.training import Trainer, latest_checkpoint, load_checkpoint

HERE = Path(__file__).resolve().parent
ITERATIONS = 24

# Each step sleeps a little so the kill lands mid-run whatever the machine's speed.
SCRIPT = f"""
import sys, time
import torch
torch.set_num_threads(2)  # as the test process, so float sums run in the same order
from training_toys import toy_config, toy_data, toy_model
from workbench.training import Trainer, TrainingCallback

class Slow(TrainingCallback):
    def on_step(self, step, metrics):
        time.sleep(0.1)

config = toy_config(sys.argv[1], iterations={ITERATIONS}, save_every=2)
Trainer(config, data=toy_data(config), model=toy_model(), progress=False, callbacks=[Slow()]).fit(resume=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_run_then_resume_matches_clean_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(run_dir)], env=env, cwd=HERE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            latest = latest_checkpoint(run_dir)
            if latest is not None and load_checkpoint(latest)["iteration"] >= 6:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared within 240 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(latest_checkpoint(run_dir))["iteration"]  # type: ignore[arg-type]
    assert 6 <= killed_at < ITERATIONS

    config = toy_config(run_dir, iterations=ITERATIONS, save_every=2)
    resumed = Trainer(config, data=toy_data(config), model=toy_model(seed=99), progress=False)
    result = resumed.fit(resume=True)
    assert result.step == ITERATIONS

    clean_config = toy_config(tmp_path / "clean", iterations=ITERATIONS, save_every=2)
    clean = Trainer(clean_config, data=toy_data(clean_config), model=toy_model(), progress=False)
    clean.fit()
    assert resumed.model is not None and clean.model is not None
    a, b = weights(resumed.model), weights(clean.model)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key
