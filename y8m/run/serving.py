"""Serving export: a TensorFlow SavedModel with the starter code's signature (serialized
records in, parsed in the graph as y8m's readers parse them; `video_id`, `class_indexes` and
`predictions` top-K out), written atomically as a folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import time

from y8m.errors import UsageError, integer
from y8m.fileio import atomic_path
from y8m.run import rundir

SIGNATURE = "serving_default"
INPUT_NAME = "example_bytes"
OUTPUT_NAMES = ("video_id", "class_indexes", "predictions")
SAVED_MODEL_FILE = "saved_model.pb"


def serving_function(model, config: dict, top_k: int = 20):
    """`example_bytes` string [B] -> {video_id [B] string, class_indexes [B, K] int32,
    predictions [B, K] float32}, as a `tf.function` with a fixed input signature."""
    import tensorflow as tf

    parse = rundir.evaluation_parser(config)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name=INPUT_NAME)])
    def serve(example_bytes):
        batch = parse(example_bytes)
        inputs = rundir.model_inputs(batch, config)
        probabilities = tf.cast(model(inputs, training=False), tf.float32)
        scores, classes = tf.math.top_k(probabilities, k=top_k)  # (B, K) each
        return {
            "video_id": batch["id"],
            "class_indexes": tf.cast(classes, tf.int32),
            "predictions": scores,
        }

    return serve


def export_saved_model(model, config: dict, output_dir: str, top_k: int = 20) -> dict:
    """Writes OUTPUT_DIR: a SavedModel (tag `serve`, signature `serving_default`) plus the
    run's config.json, built beside it and renamed into place once complete. A name ending
    in .tgz gets that folder's files packed flat into a gzipped tar instead (the 2018 rules'
    model upload: unpacked, the folder loads with `tf.saved_model.load`).

    Args:
        model: the Keras model the run is judged by (`y8m.run.loading.load_model`): its
            weights and batch-norm statistics are exported as they are.
        config: the run's config (its `data` section fixes the parsing, `num_classes` K's bound).
        output_dir: the SavedModel folder; an existing SavedModel there is replaced only after
            the new one is complete.
        top_k: classes per video in the outputs.

    Returns:
        dict with `output_dir`, `mb` (size on disk: the folder, or the .tgz), `saved_model_mb`
        (the folder), `seconds` and `top_k`.
    """
    top_k = integer("top_k", top_k, 1, int(config["num_classes"]))
    output_dir = os.path.abspath(os.fspath(output_dir))
    start = time.perf_counter()
    if output_dir.endswith(".tgz"):
        with tempfile.TemporaryDirectory() as tmp:
            write_saved_model(model, config, tmp, top_k)
            size = folder_bytes(tmp)
            with atomic_path(output_dir) as out, tarfile.open(out, "w:gz") as tar:
                for name in sorted(os.listdir(tmp)):
                    tar.add(os.path.join(tmp, name), arcname=name)
        mb = os.path.getsize(output_dir) / 2**20
    else:
        _check_target(output_dir)
        with _atomic_folder(output_dir) as tmp:
            write_saved_model(model, config, tmp, top_k)
        size = folder_bytes(output_dir)
        mb = size / 2**20
    return {
        "output_dir": output_dir,
        "mb": mb,
        "saved_model_mb": size / 2**20,
        "seconds": time.perf_counter() - start,
        "top_k": top_k,
    }


def write_saved_model(model, config: dict, folder: str, top_k: int) -> None:
    """Writes the SavedModel and config.json into FOLDER (not atomic: see `export_saved_model`)."""
    import keras

    # ExportArchive, not a bare tf.Module: it is Keras 3's supported way to track a model's
    # variables (trainable and not, so batch-norm statistics travel) for tf.saved_model.save,
    # and it registers the endpoint as the `serving_default` signature TF-Serving asks for.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serving_function(model, config, top_k))
    archive.write_out(folder, verbose=False)
    with open(os.path.join(folder, rundir.CONFIG_FILE), "w") as f:
        json.dump({**config, "serving": {"top_k": top_k}}, f, indent=2, sort_keys=True)


def folder_bytes(folder: str) -> int:
    """Total size of the files under FOLDER."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
    )


def _check_target(output_dir: str) -> None:
    if os.path.isfile(output_dir):
        raise UsageError(
            f"--output_file {output_dir} is a file: pass a folder for the SavedModel or a .tgz name"
        )
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not os.path.exists(os.path.join(output_dir, SAVED_MODEL_FILE)):
            raise UsageError(
                f"{output_dir} exists and holds no SavedModel: choose a new folder or empty it"
            )


@contextlib.contextmanager
def _atomic_folder(path: str):
    """Yields a fresh folder beside PATH; when the block succeeds it takes PATH's place (an
    old folder there is moved aside first and removed after), otherwise it is removed."""
    parent, name = os.path.split(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{name}", dir=parent)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    old = None
    try:
        yield tmp
        if os.path.isdir(path):
            # A folder cannot be renamed over a non-empty one: move the old aside, then swap.
            old = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-old-", suffix=f"-{name}", dir=parent)
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as err:
        if old and not os.path.exists(path):
            os.replace(old, path)  # put the old SavedModel back
            old = None
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
