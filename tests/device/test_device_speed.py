"""The device check's timed part: what a GPU user needs to know before a study runs for days.

- the CASIA-B training step under fp32, bf16 and fp16 autocast against the plain split/concat recipe
  in the same run: sequences per second, the ratio and the step's peak CUDA memory;
- batched inference over sequences of different lengths against one sequence at a time;
- ``torch.compile`` of the model on and off: compile seconds, step time, the same outputs;
- a two-trial study with two workers on the device.

These run inside the device check only (``nox -s gpu`` sets ``WORKBENCH_DEVICE_CHECK_JSON``), so the
plain suite stays short. Without a GPU they run at CPU sizes, so the check is known to run end to end
before it meets one; their figures go to the check's JSON either way.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from test_bench_hstl_step import BATCH, FRAMES, HEIGHT, WIDTH, amp_figures, step_times, training_step
from test_bench_inference import random_walks

from workbench.data import ArraySource
from workbench.evaluation import extract_embeddings
from workbench.models import create_model, native_bf16

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda", 0) if CUDA else torch.device("cpu")

pytestmark = [
    pytest.mark.device,
    pytest.mark.skipif(not os.environ.get("WORKBENCH_DEVICE_CHECK_JSON"),
                       reason="timed part of the device check: `nox -s gpu` runs it (at CPU sizes without a GPU)"),
]


def _finite(value: float) -> float | None:
    """JSON has no NaN: a figure the device cannot give (CUDA memory on a CPU) is recorded as null."""
    return None if math.isnan(value) else round(value, 3)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_casia_b_training_step_against_the_plain_recipe(amp: str, figures: dict[str, Any]) -> None:
    if amp == "fp16" and not CUDA:
        pytest.skip("fp16 autocast trains on CUDA only")
    if amp == "bf16" and not native_bf16(DEVICE):
        pytest.skip(f"{DEVICE.type} has no bf16 units: bf16 autocast would be emulated, so it is not a choice here")
    if CUDA:
        torch.backends.cudnn.benchmark = True
    sizes: dict[str, int] = {} if CUDA else {"steps": 1, "warmup": 1, "infer_batch": 4}
    sides = {variant: amp_figures(variant, DEVICE, amp, **sizes) for variant in ("plain", "workbench")}
    plain, mine = sides["plain"], sides["workbench"]
    figures.update({f"{variant}_{key}": _finite(value) for variant, f in sides.items() for key, value in f.items()})
    figures.update(
        batch=[BATCH, FRAMES, HEIGHT, WIDTH], amp=amp,
        train_ratio=round(mine["train_seq_s"] / plain["train_seq_s"], 3),
        inference_ratio=round(mine["infer_seq_s"] / plain["infer_seq_s"], 3),
        train_peak_memory_ratio=_finite(mine["train_peak_mb"] / plain["train_peak_mb"]),
    )
    print(f"\nCASIA-B HSTL step on {DEVICE}, {'fp32' if amp == 'off' else amp}, {BATCH}x{FRAMES}x{HEIGHT}x{WIDTH}: "
          f"plain {plain['train_seq_s']:.1f} seq/s, workbench {mine['train_seq_s']:.1f} seq/s "
          f"({figures['train_ratio']:.2f}x); inference {figures['inference_ratio']:.2f}x; "
          f"peak memory ratio {figures['train_peak_memory_ratio']}")


def test_batched_variable_length_inference_against_one_at_a_time(figures: dict[str, Any]) -> None:
    source = random_walks()
    if not CUDA:  # a sixth of the sequences: the CPU run checks the path, not the speed
        source = ArraySource(source.sequences[:4], source.records[:4], name="random walks")
    torch.manual_seed(0)
    model = create_model("hstl-casia-b").to(DEVICE).eval()
    batches = {"one at a time": 1, "padded batches of 8": 8}
    extract_embeddings(model, source, batch_size=8, progress=False)  # warm-up (cudnn picks its kernels)
    seconds: dict[str, float] = {}
    embeddings: dict[str, np.ndarray] = {}
    for name, size in [*batches.items(), *batches.items()]:  # alternate, keep each setting's best time
        if CUDA:
            torch.cuda.synchronize()
        start = time.perf_counter()
        embeddings[name] = extract_embeddings(model, source, batch_size=size, progress=False).embeddings
        if CUDA:
            torch.cuda.synchronize()
        seconds[name] = min(seconds.get(name, math.inf), time.perf_counter() - start)
    np.testing.assert_allclose(embeddings["padded batches of 8"], embeddings["one at a time"], atol=1e-3, rtol=1e-3)
    count = len(source.sequences)
    figures.update({f"{name} seq/s": round(count / s, 2) for name, s in seconds.items()})
    figures.update(sequences=count, frames=sum(len(s) for s in source.sequences),
                   batched_over_one=round(seconds["one at a time"] / seconds["padded batches of 8"], 3))
    print(f"\nCASIA-B HSTL inference on {DEVICE}, {count} sequences of 50-90 frames: "
          + ", ".join(f"{name} {count / s:.1f} seq/s" for name, s in seconds.items())
          + f"; batched / one at a time {figures['batched_over_one']:.2f}x")


def test_torch_compile_on_and_off(figures: dict[str, Any]) -> None:
    from workbench.training import GaitLoss

    # On a CPU the small model keeps the compile to about a minute; the GPU compiles the CASIA-B one.
    name, shape, steps = ("hstl-casia-b", (BATCH, FRAMES, HEIGHT, WIDTH), 10) if CUDA else \
        ("hstl-small", (4, 16, HEIGHT, WIDTH), 2)
    torch.manual_seed(0)
    model = create_model(name).to(DEVICE).train()
    x = (torch.rand(*shape, device=DEVICE) > 0.6).float()
    labels = torch.arange(shape[0] // 2, device=DEVICE).repeat_interleave(2)
    loss_fn = GaitLoss()
    eager_out = model(x)[0].detach()
    eager_s = statistics.median(step_times(lambda: training_step(model, loss_fn, x, labels), 1, steps, DEVICE))
    compiled = torch.compile(model)
    start = time.perf_counter()
    compiled_out = compiled(x)[0].detach()
    if CUDA:
        torch.cuda.synchronize()
    compile_s = time.perf_counter() - start
    compiled_s = statistics.median(step_times(lambda: training_step(compiled, loss_fn, x, labels), 1, steps, DEVICE))
    difference = float((compiled_out - eager_out).abs().max())
    figures.update(model=name, input=list(shape), compile_seconds=round(compile_s, 1),
                   eager_step_s=round(eager_s, 4), compiled_step_s=round(compiled_s, 4),
                   compiled_speedup=round(eager_s / compiled_s, 3), max_output_difference=difference)
    print(f"\ntorch.compile of {name} on {DEVICE}: compiled in {compile_s:.0f} s; train step eager {eager_s:.3f} s, "
          f"compiled {compiled_s:.3f} s ({eager_s / compiled_s:.2f}x); outputs differ by at most {difference:.1e}")
    torch.testing.assert_close(compiled_out, eager_out, atol=1e-3, rtol=1e-3)


def test_a_two_trial_study_with_two_workers(tmp_path: Path, figures: dict[str, Any]) -> None:
    from workbench.data.synth import SynthConfig, render_dataset
    from workbench.search import SYNTHETIC_SETS, load_study_config, run_study
    from workbench.tracking import load_trials

    data = tmp_path / "small"
    render_dataset(data, SynthConfig.default(seed=0, **SYNTHETIC_SETS["small"]), progress=False)
    iterations = 20 if CUDA else 4  # the CPU run checks that two workers share the device, not the speed
    study = tmp_path / "two-workers.toml"
    study.write_text(f"""
[study]
name = "two-workers"
project_dir = "{tmp_path / 'home'}"
[data]
source = "{data}"
eval_batch_size = 32
[hierarchies]
presets = ["casia-b-paper", "uniform-64"]
[space]
stage_cuts = [[2], [4]]
channels = [[8, 16, 32]]
lr = [1e-3, 1e-3]
frames = [16]
fta = [true]
[[objectives]]
metric = "rank1"
direction = "maximize"
[budget]
trials = 2
iterations = {iterations}
eval_every = {iterations // 2}
[sampler]
name = "grid"
[storage]
url = "journal:{tmp_path / 'two-workers.journal'}"
[tracking]
uri = "sqlite:///{tmp_path / 'mlflow.db'}"
experiment = "two-workers"
[train]
device = "auto"
save_every = {iterations // 2}
log_every = 2
[train.data]
p = 2
k = 2
""")
    start = time.perf_counter()
    summary = run_study(study, workers=2)
    seconds = time.perf_counter() - start
    assert summary.complete == 2, summary
    config = load_study_config(study)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    devices = sorted(str(d) for d in runs["tags.workbench.train.device"])
    figures.update(seconds=round(seconds, 1), trial_devices=devices,
                   rank1=[round(float(v), 2) for v in runs["metrics.val/rank1"]] if "metrics.val/rank1" in runs else None)
    print(f"\ntwo-trial study with two workers: {seconds:.0f} s, trials trained on {devices}")
    assert all(d.startswith(DEVICE.type) for d in devices), devices
