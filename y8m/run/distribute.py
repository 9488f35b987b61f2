"""TensorFlow distribution strategies for `y8m train`, and worker identity for eval/predict.

Multi-worker runs are configured by the standard `TF_CONFIG` environment variable, e.g. for
worker 1 of 2: {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type":
"worker", "index": 1}}. Worker 0 is the chief: it alone writes the run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from y8m.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise UsageError(f"TF_CONFIG is not valid JSON ({err}): see docs/distributed.md") from None


def worker_info() -> tuple[int, int]:
    """(number of workers, this worker's index) from TF_CONFIG; (1, 0) when it is not set."""
    config = tf_config()
    workers = config.get("cluster", {}).get("worker", [])
    chief = config.get("cluster", {}).get("chief", [])
    task = config.get("task", {})
    if not workers and not chief:
        return 1, 0
    total = len(workers) + len(chief)
    index = int(task.get("index", 0)) + (len(chief) if task.get("type") == "worker" else 0)
    return total, index


def is_chief() -> bool:
    return worker_info()[1] == 0


def make_strategy(name: str = "default"):
    """The tf.distribute strategy for a `--strategy` name."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UsageError(f"unknown --strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not tf_config():
            raise UsageError(
                "--strategy=multi_worker needs TF_CONFIG set on every worker: see docs/distributed.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise UsageError(
            f"--strategy=tpu found no TPU ({str(err).splitlines()[0][:120]})"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def checkpoint_dir(train_dir: str, chief: bool) -> str:
    """Where this worker writes checkpoints: the run's folder on the chief, a scratch folder
    elsewhere (every worker must take part in saving, only the chief's copy is kept)."""
    from y8m.run import rundir

    if chief:
        return rundir.path(train_dir, rundir.CHECKPOINT_DIR)
    return tempfile.mkdtemp(prefix="y8m-worker-ckpt-")


def discard(path: str, chief: bool) -> None:
    if not chief:
        shutil.rmtree(path, ignore_errors=True)
