"""Child process of the CPU memory probe: build the model, note the resident set, run one step.

Reads one JSON request on stdin (``recipe``, ``input_shape``, ``mode``, ``threads``, ``amp``) and prints one
JSON line: ``baseline_bytes`` (resident set just before the step), ``peak_bytes`` (high-water mark
after it) and ``method``, or ``error``.

Why not only ``ru_maxrss``: Linux carries the parent's high-water mark into ``ru_maxrss`` across
``exec`` (a child of an 800 MB parent reports about 980 MB before it allocates anything), which
would hide exactly what a fresh process is meant to show. On Linux the probe therefore reads the
child's own ``VmHWM`` from ``/proc/self/status`` and resets it (``/proc/self/clear_refs``) right
before the step; elsewhere it falls back to ``ru_maxrss``.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes, or ``None`` where there is no procfs."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return None


def max_rss_bytes() -> int:
    """``ru_maxrss`` in bytes (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_high_water() -> bool:
    """Reset ``VmHWM`` to the current resident set (Linux >= 4.0); False where not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Run the step described by ``request`` and report the resident set around it."""
    import torch

    from workbench.cost._source import ModelRecipe
    from workbench.cost._step import check_mode, check_shape, prepare, random_input, run_step

    torch.set_num_threads(int(request.get("threads", 1)))
    recipe = ModelRecipe.from_json(json.dumps(request["recipe"]))
    mode = check_mode(request["mode"])
    shape = check_shape(request["input_shape"])
    amp = str(request.get("amp", "off"))
    model = recipe.build()
    x = random_input(shape, torch.device("cpu"))
    prepare(model, mode)
    gc.collect()
    if _status_bytes("VmHWM") is not None:
        reset = _reset_high_water()
        # Without a reset the high-water mark may still hold a transient peak of model building.
        baseline = _status_bytes("VmRSS" if reset else "VmHWM")
        run_step(model, x, mode, amp)
        peak = _status_bytes("VmHWM")
        method = "process-rss (VmHWM reset before the step)" if reset else "process-rss (VmHWM)"
    else:
        baseline = max_rss_bytes()
        run_step(model, x, mode, amp)
        peak = max_rss_bytes()
        method = "process-rss (ru_maxrss)"
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "method": method,
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    """Entry point: request on stdin, one JSON result line on stdout."""
    try:
        result = probe(json.loads(sys.stdin.read()))
    except Exception as exc:  # reported to the parent, which raises with this message
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
