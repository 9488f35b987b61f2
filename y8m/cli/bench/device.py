"""Where `y8m bench train` runs (`--device`) and what it reports about it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

from y8m import machine
from y8m.errors import UsageError


def pick_device(device: str) -> dict:
    """{"name": "cpu" | "gpu", "scope": a context factory placing TensorFlow ops there}.

    auto takes the GPU when TensorFlow sees one. Raises UsageError for an unknown name, or gpu
    on a machine without one.
    """
    import tensorflow as tf

    if device not in ("auto", "cpu", "gpu"):
        raise UsageError(f"--device must be auto, cpu or gpu, got {device!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu" and not gpus:
        raise UsageError("--device=gpu but TensorFlow sees no GPU; use --device=cpu")
    if device == "cpu" or not gpus:
        if gpus:  # hide the GPU, or Keras' variables and the matmul would still go there
            return {"name": "cpu", "scope": lambda: tf.device("/CPU:0")}
        return {"name": "cpu", "scope": contextlib.nullcontext}
    return {"name": "gpu", "scope": lambda: tf.device(gpus[0].name)}


def describe() -> dict:
    """device, device_name and device_memory_gb where TensorFlow places ops now (inside the
    bench's device scope): the GPU's (from TensorFlow and nvidia-smi), else the CPU's and the
    machine's memory."""
    import tensorflow as tf

    if not _placed_on_gpu():
        return {
            "device": "cpu",
            "device_name": machine.cpu_name(),
            "device_memory_gb": machine.ram_gb(),
        }
    physical = tf.config.list_physical_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(physical)
    return {
        "device": "gpu",
        "device_name": details.get("device_name", physical.name),
        "device_memory_gb": _gpu_memory_gb(),
    }


def _placed_on_gpu() -> bool:
    import tensorflow as tf

    return "GPU" in tf.constant(0.0).device.upper()


def _gpu_memory_gb() -> float | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return round(float(out.split()[0]) / 1024, 2)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
