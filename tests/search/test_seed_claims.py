"""A seed is trained by one process at a time: the others take other seeds, or wait and read it back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from workbench.search._replicates import SEED_CLAIM, seed_claim


def test_a_held_seed_is_refused_without_waiting_and_free_again_once_released(tmp_path: Path) -> None:
    folder = tmp_path / "confirm" / "seed-3"
    with seed_claim(folder) as mine:
        assert mine and (folder / SEED_CLAIM).is_file()
        with seed_claim(folder, wait=False) as other:
            assert not other
    with seed_claim(folder, wait=False) as again:
        assert again


def test_a_claim_dies_with_the_process_that_held_it(tmp_path: Path) -> None:
    folder = tmp_path / "seed-0"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from workbench.search._replicates import seed_claim\n"
        f"with seed_claim(Path({str(folder)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with seed_claim(folder, wait=False) as taken:
            assert not taken
        holder.kill()  # a worker killed mid-seed: its seed must not stay claimed
        holder.wait(timeout=30)
        deadline = time.monotonic() + 10
        while True:
            with seed_claim(folder, wait=False) as taken:
                if taken or time.monotonic() > deadline:
                    break
            time.sleep(0.05)
        assert taken
    finally:
        holder.kill()
