"""Study workers on a machine with several GPUs: one GPU per worker, chosen before torch starts CUDA."""

from __future__ import annotations

import optuna
import pytest
import torch

from workbench.cli import main
from workbench.search import load_study_config, open_storage, run_study
from workbench.search._devices import parse_gpus, visible_gpus, worker_gpus
from workbench.search._heartbeat import WORKER_KEY
from workbench.tracking import load_trials


def test_workers_take_the_gpus_in_turn_or_the_ones_listed() -> None:
    assert worker_gpus(4, None, ["0", "1"]) == ["0", "1", "0", "1"]
    assert worker_gpus(3, [1], ["0", "1"]) == ["1", "1", "1"]
    assert worker_gpus(2, [2, 0], ["0", "1", "2"]) == ["2", "0"]
    assert worker_gpus(1, None, ["0", "1"]) == [None], "one worker keeps every GPU, as a plain run does"
    assert worker_gpus(2, None, []) == [None, None], "a CPU machine changes nothing"
    with pytest.raises(ValueError, match=r"GPU 3 is not here.*2 GPU"):
        worker_gpus(2, [3], ["0", "1"])
    with pytest.raises(ValueError, match="no CUDA device"):
        worker_gpus(2, [0], [])
    assert parse_gpus("0,2") == [0, 2]
    with pytest.raises(ValueError, match="--gpus"):
        parse_gpus("first")


def test_gpu_numbers_index_the_devices_this_process_was_given(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert visible_gpus() == ["4", "6"]
    assert worker_gpus(2, [1], visible_gpus()) == ["6", "6"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]


def test_a_gpu_that_is_not_there_stops_the_study_before_any_work(write_study, capsys) -> None:
    path = write_study(name="no-gpu", trials=1)
    assert main(["study", "run", str(path), "--workers", "2", "--gpus", "0"]) == 2
    assert "--gpus" in capsys.readouterr().err
    assert not (load_study_config(path).project_dir / "no-gpu.journal").exists()


@pytest.mark.slow
def test_each_worker_trains_on_its_own_gpu_and_its_trials_say_which(write_study, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # this process sees two GPUs
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    path = write_study(name="gpus", trials=4, iterations=2, storage=f"journal:{tmp_path / 'gpus.journal'}")
    summary = run_study(path, workers=2, gpus=[1, 0])
    assert summary.complete == 4
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    devices = dict(zip(runs["trial"], runs["tags.workbench.cuda_visible_devices"], strict=True))
    assert set(devices.values()) <= {"0", "1"} and len(devices) == 4
    study = optuna.load_study(study_name="gpus", storage=open_storage(f"journal:{tmp_path / 'gpus.journal'}"))
    by_worker: dict[str, set[str]] = {}
    for t in study.trials:
        if t.number in devices:
            by_worker.setdefault(str(t.system_attrs[WORKER_KEY]), set()).add(devices[t.number])
    assert all(len(gpus) == 1 for gpus in by_worker.values()), f"a worker changed GPU: {by_worker}"
    assert len({next(iter(g)) for g in by_worker.values()}) == len(by_worker), "two workers shared a GPU"


def test_the_test_step_gives_each_worker_one_gpu_however_many_ranks_trained(write_study, monkeypatch) -> None:
    from dataclasses import replace

    from workbench.search._heldout import evaluation_gpus

    config = load_study_config(write_study(name="testgpus", trials=1, iterations=2))
    ddp = replace(config, train=replace(config.train, device="cuda", nproc_per_node=2))
    monkeypatch.setattr("workbench.search._devices.visible_gpus", lambda: ["0", "1", "2"])
    assert evaluation_gpus(ddp, 2) == ["0", "1"]
    assert evaluation_gpus(ddp, 4) == ["0", "1", "2", "0"]
    cpu = replace(config, train=replace(config.train, device="cpu"))
    assert evaluation_gpus(cpu, 2) == [None, None], "a study on the CPU evaluates on the CPU"
