"""`y8m export`: pack a trained run into one .tgz (model + config), optionally in float16."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile

from y8m.errors import UsageError
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
) -> dict:
    """Writes OUTPUT_FILE (.tgz) with config.json and the model; float16 halves its size.

    Args:
        train_dir: run directory written by `y8m train`.
        output_file: the archive, e.g. model.tgz (unpack it and pass the folder as --train_dir).
        dtype: float32 (model.keras as trained) or float16 (weights rounded to half precision,
            restored to float32 when loaded).
        check_data_pattern: validation records: with float16, refuse the export if GAP moves by
            `max_gap_change` or more.
        max_gap_change: the largest GAP change accepted for float16.
        check_max_videos: videos used by the check.
    """
    if not train_dir or not output_file:
        raise UsageError("pass --train_dir (a trained run) and --output_file (e.g. model.tgz)")
    if dtype not in ("float32", "float16"):
        raise UsageError(f"--dtype must be float32 or float16, got {dtype!r}")
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
            before = validation_gap(model, config, check_data_pattern, check_max_videos)
            model.set_weights([h.astype(w.dtype) for h, w in zip(halves, model.get_weights())])
            after = validation_gap(model, config, check_data_pattern, check_max_videos)
            result.update(gap_float32=before, gap_float16=after)
            print(f"GAP float32 {before:.5f}, float16 {after:.5f} (change {after - before:+.5f})")
            if abs(after - before) >= float(max_gap_change):
                raise UsageError(
                    f"float16 changes validation GAP by {after - before:+.5f} (limit {max_gap_change}): "
                    "export in float32"
                )
    with atomic_path(output_file) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result["mb"] = os.path.getsize(output_file) / 2**20
    result["params"] = int(model.count_params())
    print(f"wrote {output_file} ({result['mb']:.1f} MB, {dtype}, {result['params']:,} parameters)")
    return result
