"""Splitting eval/predict over workers by file shard, and merging their parts without duplicates.

Each worker reads every N-th file (disjoint videos) and writes its part next to the final
output. Nobody waits: the worker that finds every part present when it finishes (the last
one) merges them, and a worker that does not says which parts are still missing. An explicit
merge step (`y8m predict --merge`, `y8m eval --merge`) merges parts written elsewhere, or those
left when the last worker died before merging. Workers come from TF_CONFIG (as training) or
from explicit `--num_workers/--worker_index` (e.g. a job array).
"""

from __future__ import annotations

import glob
import os
import re
import time

from y8m.errors import UsageError


def resolve(num_workers: int | None, worker_index: int | None) -> tuple[int, int]:
    """(N, i) from the flags, else from TF_CONFIG, else (1, 0)."""
    from y8m.run.distribute import worker_info

    if num_workers is None and worker_index is None:
        return worker_info()
    n = int(num_workers or 1)
    i = int(worker_index or 0)
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--worker_index must be in [0, --num_workers), got {i} of {n}")
    return n, i


def part_path(path: str, index: int, total: int, suffix: str) -> str:
    return f"{path}.part-{index:05d}-of-{total:05d}{suffix}"


def all_parts(path: str, total: int, suffix: str) -> list[str]:
    return [part_path(path, i, total, suffix) for i in range(total)]


def found_parts(path: str, suffix: str) -> list[str]:
    """The parts of PATH on disk, whatever their worker count: (sorted paths)."""
    pattern = re.compile(
        re.escape(os.path.basename(path)) + r"\.part-\d{5}-of-(\d{5})" + re.escape(suffix) + "$"
    )
    found = [
        p for p in glob.glob(glob.escape(path) + ".part-*") if pattern.match(os.path.basename(p))
    ]
    return sorted(found)


def parts_for_merge(
    path: str, suffix: str, wait_s: float = 0.0, progress: bool = True
) -> list[str]:
    """The complete part set of PATH for an explicit merge; waits up to `wait_s` seconds for
    missing parts (a bar says which), then a UsageError naming the ones still missing."""
    found = found_parts(path, suffix)
    if not found:
        raise UsageError(
            f"no worker parts of {path} found ({path}.part-*-of-*{suffix}): nothing to merge"
        )
    totals = {int(re.search(r"-of-(\d{5})", p).group(1)) for p in found}
    if len(totals) > 1:
        raise UsageError(
            f"parts of {path} from runs with different --num_workers ({sorted(totals)}): remove the stale ones"
        )
    expected = all_parts(path, totals.pop(), suffix)
    deadline = time.monotonic() + float(wait_s)
    missing = [p for p in expected if not os.path.exists(p)]
    if missing and wait_s > 0:
        from tqdm import tqdm

        with tqdm(
            total=len(expected),
            initial=len(expected) - len(missing),
            unit="part",
            desc="waiting for worker parts",
            disable=not progress,
        ) as bar:
            while missing and time.monotonic() < deadline:
                time.sleep(1.0)
                still = [p for p in missing if not os.path.exists(p)]
                bar.update(len(missing) - len(still))
                missing = still
    if missing:
        raise UsageError(
            f"{len(missing)} of {len(expected)} worker part(s) missing (first: {missing[0]}): "
            "run the missing workers, then merge again"
        )
    return expected


def claim_merge(path: str, total: int, suffix: str) -> tuple[bool, list[str]]:
    """(True, []) when every part exists and this worker won the right to merge them (the
    claim is an exclusive file create, so two workers finishing together merge once);
    (False, missing parts) otherwise."""
    missing = [p for p in all_parts(path, total, suffix) if not os.path.exists(p)]
    if missing:
        return False, missing
    try:
        fd = os.open(path + ".merging", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False, []
    os.close(fd)
    return True, []


def release_merge(path: str) -> None:
    try:
        os.remove(path + ".merging")
    except FileNotFoundError:
        pass


def waiting_message(index: int, total: int, missing: list[str], merge_command: str) -> str:
    if not missing:
        return f"worker {index}/{total}: another worker is merging the parts"
    return (
        f"worker {index}/{total}: {len(missing)} part(s) still missing (first: {missing[0]}); "
        f"the last worker to finish merges them, or run `{merge_command}`"
    )


def merge_prediction_parts(parts: list[str], output: str, remove: bool = True) -> int:
    """Concatenates prediction-store parts into `output`, keeping the first row of any id;
    the parts are removed afterwards unless `remove` is False (the caller removes them once
    the output is committed)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from y8m.fileio import atomic_path
    from y8m.predictions import METADATA_KEY

    seen: set[str] = set()
    rows = 0
    schema = pq.read_schema(parts[0])
    key = METADATA_KEY
    meta = json.loads(schema.metadata[key]) if schema.metadata and key in schema.metadata else {}
    meta["merged_from_workers"] = len(parts)
    schema = schema.with_metadata({**(schema.metadata or {}), key: json.dumps(meta).encode()})
    with atomic_path(output) as tmp:
        writer = pq.ParquetWriter(tmp, schema)
        try:
            for part in parts:
                for batch in pq.ParquetFile(part).iter_batches():
                    ids = batch.column("id").to_pylist()
                    keep = [j for j, vid in enumerate(ids) if vid not in seen]
                    seen.update(ids[j] for j in keep)
                    if keep:
                        table = pa.Table.from_batches([batch]).take(pa.array(keep)).cast(schema)
                        writer.write_table(table)
                        rows += len(keep)
        finally:
            writer.close()
    if remove:
        for part in parts:
            os.remove(part)
    return rows
