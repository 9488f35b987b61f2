"""`y8m bench predict`: inference videos/s and peak memory as the number of videos grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

_CHILD = """
import json, resource, sys, time
from y8m.run.predict import predict
t = time.perf_counter()
r = predict(train_dir=sys.argv[1], input_data_pattern=sys.argv[2], output_file=sys.argv[3],
            top_k=int(sys.argv[4]), batch_size=int(sys.argv[5]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "videos": r["num_videos"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_predict(
    videos: str = "10000,100000",
    model: str = "moe",
    top_k: int = 100,
    batch_size: int = 1024,
    workdir: str | None = None,
    seed: int = 0,
) -> dict:
    """Predicts over growing synthetic video-level sets, each in a fresh process.

    Streaming means peak memory stays flat as the number of videos grows 10x.

    Args:
        videos: comma-separated set sizes.
        model: registry name of a video-level model (trained one step, weights do not matter).
        top_k: classes kept per video.
        batch_size: videos per batch.
        workdir: where data and runs go (a temporary folder by default).
        seed: random seed.
    """
    from y8m.data.synth import synthesize
    from y8m.run.train import train

    sizes = [
        int(v) for v in str(videos).replace("(", "").replace(")", "").split(",") if str(v).strip()
    ]
    workdir = workdir or tempfile.mkdtemp(prefix="y8m-bench-predict-")
    rows = []
    run_dir = os.path.join(workdir, "run")
    for n in sizes:
        data = os.path.join(workdir, f"data{n}")
        if not os.path.exists(os.path.join(data, "vocabulary.csv")):
            synthesize(
                data,
                videos=n,
                validate_videos=1,
                test_videos=1,
                shards=max(n // 10000, 1),
                level="video",
                min_frames=1,
                max_frames=1,
                seed=seed,
            )
        if not os.path.exists(os.path.join(run_dir, "model.keras")):
            train(
                model=model,
                train_data_pattern=os.path.join(data, "video", "train*.tfrecord"),
                train_dir=run_dir,
                max_steps=1,
                batch_size=min(64, n),
                progress=False,
            )
        out = (
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    run_dir,
                    os.path.join(data, "video", "train*.tfrecord"),
                    os.path.join(workdir, f"preds{n}"),
                    str(top_k),
                    str(batch_size),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        figures = json.loads(out)
        rows.append(
            {
                "videos": figures["videos"],
                "videos_per_s": figures["videos"] / figures["seconds"],
                "peak_rss_mb": figures["peak_rss_mb"],
            }
        )
    print(f"{'videos':>10} {'videos/s':>10} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['videos']:>10} {r['videos_per_s']:>10.0f} {r['peak_rss_mb']:>12.0f}")
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1 if len(rows) > 1 else 0.0
    result = {
        "model": model,
        "top_k": int(top_k),
        "sizes": [r["videos"] for r in rows],
        "videos_per_s": [round(r["videos_per_s"]) for r in rows],
        "peak_rss_mb": [round(r["peak_rss_mb"]) for r in rows],
        "peak_rss_growth": round(growth, 3),
    }
    print(json.dumps(result))
    return result
