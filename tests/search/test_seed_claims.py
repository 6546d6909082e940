"""A seed is trained by one process at a time: the others take other seeds, or wait and read it back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_replicate_takes_the_free_seeds_before_waiting_for_one_another_process_holds(write_study) -> None:
    import threading

    import optuna

    from workbench.cli import main
    from workbench.search import load_study_config, open_storage, run_study

    path = write_study(name="shared", trials=2, iterations=2)
    path.write_text(path.read_text().replace("fta = [true, false]", "fta = [true]").replace('name = "random"', 'name = "grid"'))
    assert run_study(path).complete == 2
    config = load_study_config(path)
    study = optuna.load_study(study_name="shared", storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))
    first, second = (Path(t.user_attrs["output_dir"]) for t in sorted(study.trials, key=lambda t: t.number))
    held = first / "confirm" / "seed-1"
    done = {}

    with seed_claim(held) as mine:  # another terminal's `study replicate` is training trial 0's fresh seed
        assert mine
        worker = threading.Thread(target=lambda: done.setdefault(
            "rc", main(["study", "replicate", str(path), "--all", "--seeds", "1"])))
        worker.start()
        deadline = time.monotonic() + 300
        while not (second / "confirm" / "seed-1" / "evaluation" / "subject_scores.npz").is_file():
            assert worker.is_alive() and time.monotonic() < deadline, "the free seed was not trained first"
            time.sleep(0.2)
        assert worker.is_alive()  # ... and now it waits for the held one
        assert not (held / "evaluation").exists()
    worker.join(timeout=300)  # released without a result (that process died): trained here instead
    assert done.get("rc") == 0
    assert (held / "evaluation" / "subject_scores.npz").is_file()


def test_an_idle_worker_trains_the_last_free_seed_of_a_running_trial(write_study) -> None:
    import optuna
    from optuna.trial import TrialState
    from study_process_helpers import start_study_run, stop_all

    from workbench.evaluation import has_saved_result, load_result
    from workbench.search import load_study_config, open_storage
    from workbench.search._prepare import prepare_study
    from workbench.search._replicates import help_running_trial
    from workbench.search._storage import default_storage_url

    path = write_study(name="help", trials=1, iterations=40, extra='[pruner]\nname = "none"\n')
    path.write_text(path.read_text().replace("eval_every = 2", "eval_every = 20\nseeds = 4"))
    config = load_study_config(path)
    owner = start_study_run(path)  # one worker: it trains seeds 0, 1, 2, 3 in turn
    try:
        deadline = time.monotonic() + 300
        while not any(config.project_dir.rglob("seed-0/config.toml")):
            assert owner.poll() is None and time.monotonic() < deadline, "the owner never started seed 0"
            time.sleep(0.2)
        study = optuna.load_study(study_name="help", storage=open_storage(default_storage_url(config.project_dir)))
        prepared = prepare_study(config, progress=False)
        # Seeds 1-3 are free while the owner trains seed 0: the helper takes the last one.
        assert help_running_trial(config, prepared, study) == "trained"
        trial_dir = next(config.project_dir.rglob("seed-0")).parent
        assert has_saved_result(trial_dir / "seed-3" / "evaluation")
        out = owner.communicate(timeout=600)[0].decode(errors="replace")
        assert owner.returncode == 0, out[-3000:]
    finally:
        stop_all([owner])
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["seeds"] == [0, 1, 2, 3]
    rank1 = [load_result(trial_dir / f"seed-{s}" / "evaluation").summary()["rank1_mean"] for s in (0, 1, 2, 3)]
    assert trial.value == pytest.approx(sum(rank1) / 4), "the owner counted the helped seed, read back"
    assert help_running_trial(config, prepared, study) == "none", "nothing runs any more"
