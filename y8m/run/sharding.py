"""Splitting eval/predict over workers by file shard, and merging their parts without duplicates.

Each worker reads every N-th file (disjoint videos), writes a part next to the final output,
and worker 0 waits for all parts and merges them. Workers come from TF_CONFIG (as training)
or from explicit `--num_workers/--worker_index` (e.g. a job array).
"""

from __future__ import annotations

import os
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


def wait_for(paths: list[str], timeout: float, poll: float = 1.0) -> None:
    """Blocks until every path exists (other workers' parts); a UsageError after `timeout` s."""
    deadline = time.monotonic() + float(timeout)
    while True:
        missing = [p for p in paths if not os.path.exists(p)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise UsageError(
                f"{len(missing)} worker part(s) missing after {timeout:.0f} s (first: {missing[0]}): "
                "did every worker run with the same --num_workers?"
            )
        time.sleep(poll)


def merge_prediction_parts(parts: list[str], output: str) -> int:
    """Concatenates prediction-store parts into `output`, keeping the first row of any id."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from y8m.fileio import atomic_path

    seen: set[str] = set()
    rows = 0
    schema = pq.read_schema(parts[0])
    from y8m.predictions import METADATA_KEY

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
    for part in parts:
        os.remove(part)
    return rows
