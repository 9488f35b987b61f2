"""`y8m export`: pack a trained run into one .tgz (model + config), optionally in float16, or
write it as a TensorFlow SavedModel for serving (`--format=saved_model`, y8m.run.serving)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile

from y8m.errors import UsageError, choice
from y8m.fileio import atomic_path
from y8m.run import rundir
from y8m.run.inference import validation_gap
from y8m.run.loading import load_model


def export(
    train_dir: str | None = None,
    output_file: str | None = None,
    dtype: str = "float32",
    check_data_pattern: str | None = None,
    max_gap_change: float = 0.001,
    check_max_videos: int = 5000,
    format: str = "keras",
    top_k: int = 20,
    model_file: str | None = None,
    config_from: str | None = None,
) -> dict:
    """Writes OUTPUT_FILE (.tgz) with config.json and the model; float16 halves its size.
    With `--format=saved_model`, writes a TensorFlow SavedModel for serving instead.

    Args:
        train_dir: run directory written by `y8m train`.
        output_file: the archive, e.g. model.tgz (unpack it and pass the folder as --train_dir).
        dtype: float32 (model.keras as trained) or float16 (weights rounded to half precision,
            restored to float32 when loaded).
        check_data_pattern: validation records: with float16, refuse the export if GAP moves by
            `max_gap_change` or more.
        max_gap_change: the largest GAP change accepted for float16.
        check_max_videos: videos used by the check.
        format: keras (the .tgz above) or saved_model (serialized records in, top-K out:
            a folder at OUTPUT_FILE, or packed with config.json when it ends with .tgz).
        top_k: classes per video in the SavedModel's outputs.
        model_file: with saved_model, a .keras model (e.g. a packed ensemble whose inputs are
            named like a run's) instead of --train_dir; --config_from gives its data section,
            else the sidecar JSON `y8m pack` wrote beside it (MODEL_FILE.json).
        config_from: run directory whose config.json describes MODEL_FILE's inputs.
    """
    format = choice("format", format, FORMATS)
    if format == "saved_model":
        return _export_saved_model(
            train_dir, output_file, dtype, top_k, model_file, config_from,
            check_data_pattern, max_gap_change, check_max_videos,
        )  # fmt: skip
    if model_file or config_from:
        raise UsageError("--model_file/--config_from need --format=saved_model; use --train_dir")
    if not train_dir or not output_file:
        raise UsageError("pass --train_dir (a trained run) and --output_file (e.g. model.tgz)")
    _check_dtype(dtype)
    model, config = load_model(train_dir)
    members: dict[str, bytes] = {
        rundir.CONFIG_FILE: json.dumps(config, indent=2, sort_keys=True).encode()
    }
    result: dict = {"output_file": output_file, "dtype": dtype}
    if dtype == "float32":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, rundir.MODEL_FILE)
            model.save(path)
            with open(path, "rb") as f:
                members[rundir.MODEL_FILE] = f.read()
    else:
        halves = rundir.float16_weights(model)
        buffer = io.BytesIO()
        rundir.save_float16_weights(halves, buffer)
        members[rundir.FLOAT16_WEIGHTS] = buffer.getvalue()
        if check_data_pattern:
            result.update(_checked_halves(model, config, halves, check_data_pattern,
                                          max_gap_change, check_max_videos))  # fmt: skip
    with atomic_path(output_file) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result["mb"] = os.path.getsize(output_file) / 2**20
    result["params"] = int(model.count_params())
    print(f"wrote {output_file} ({result['mb']:.1f} MB, {dtype}, {result['params']:,} parameters)")
    return result


FORMATS = ("keras", "saved_model")


def _check_dtype(dtype: str) -> None:
    if dtype not in ("float32", "float16"):
        raise UsageError(f"--dtype must be float32 or float16, got {dtype!r}")


def _checked_halves(model, config, halves, pattern, max_gap_change, max_videos) -> dict:
    """Rounds MODEL's weights to HALVES; refuses if validation GAP moves by max_gap_change."""
    before = validation_gap(model, config, pattern, max_videos)
    model.set_weights([h.astype(w.dtype) for h, w in zip(halves, model.get_weights())])
    after = validation_gap(model, config, pattern, max_videos)
    print(f"GAP float32 {before:.5f}, float16 {after:.5f} (change {after - before:+.5f})")
    if abs(after - before) >= float(max_gap_change):
        raise UsageError(
            f"float16 changes validation GAP by {after - before:+.5f} (limit {max_gap_change}): "
            "export in float32"
        )
    return {"gap_float32": before, "gap_float16": after}


def _export_saved_model(train_dir, output_file, dtype, top_k, model_file, config_from,
                        check_data_pattern, max_gap_change, check_max_videos) -> dict:  # fmt: skip
    """`--format=saved_model`: the SavedModel folder at OUTPUT_FILE, or packed into a .tgz."""
    from y8m.run.serving import export_saved_model

    if not output_file:
        raise UsageError("missing --output_file: the SavedModel folder, or NAME.tgz to pack it")
    _check_dtype(dtype)
    model, config = _serving_model(train_dir, model_file, config_from)
    result: dict = {"output_file": output_file, "dtype": dtype, "format": "saved_model"}
    if dtype == "float16":
        halves = rundir.float16_weights(model)
        if check_data_pattern:
            result.update(_checked_halves(model, config, halves, check_data_pattern,
                                          max_gap_change, check_max_videos))  # fmt: skip
        else:
            model.set_weights([h.astype(w.dtype) for h, w in zip(halves, model.get_weights())])
    written = export_saved_model(model, config, output_file, top_k)
    result.update(mb=written["mb"], seconds=written["seconds"], top_k=written["top_k"])
    result["params"] = int(model.count_params())
    print(
        f"wrote {output_file} (SavedModel, {result['mb']:.1f} MB, {dtype}, "
        f"top {result['top_k']}, {result['params']:,} parameters)"
    )
    return result


def _serving_model(train_dir, model_file, config_from):
    """(model, config): the run's judged model, or MODEL_FILE described by CONFIG_FROM's run
    (default: the JSON `y8m pack` wrote beside it)."""
    if model_file:
        from y8m.run.pack import load_packed

        if train_dir:
            raise UsageError("pass --model_file (with --config_from=RUN or its sidecar JSON) "
                             "or --train_dir, not both")  # fmt: skip
        return load_packed(model_file, config_from)
    if not train_dir:
        raise UsageError("pass --train_dir (a trained run) or --model_file with --config_from")
    return load_model(train_dir)
