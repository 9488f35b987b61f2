"""`y8m bench learn`: does cluster pooling beat average pooling on planted synthetic data?"""

from __future__ import annotations

import json
import os
import tempfile
import time

# Small versions of the thesis models (the comparison is about pooling, not capacity), each
# with its reference learning rate: the starter code trained its logistic baselines at 0.01.
_NEXTVLAD = {"cluster_size": 32, "hidden_size": 256, "groups": 8, "sample_frames": 60}
SMALL = {
    "gated_netvlad": {"cluster_size": 32, "hidden_size": 256, "sample_frames": 60},
    "average_logistic": {"base_learning_rate": 0.01},
    "nextvlad": _NEXTVLAD,
    "mix_nextvlad": {**_NEXTVLAD, "mix_number": 3},
    "gated_dbof": {"cluster_size": 1024, "hidden_size": 256, "sample_frames": 60},
    "transformer": {
        "transformer_size": 128,
        "num_heads": 4,
        "transformer_layers": 2,
        "ff_size": 256,
        "sample_frames": 60,
    },
}


def bench_learn(
    data_dir: str | None = None,
    models: str = "gated_netvlad,average_logistic",
    steps: int = 400,
    batch_size: int = 64,
    videos: int = 1600,
    base_learning_rate: float = 1e-3,
    seed: int = 0,
    output_dir: str | None = None,
    precise_bn_batches: int = 200,
) -> dict:
    """Trains each model for the same number of steps on planted data; prints validation GAPs.

    Args:
        data_dir: an existing `y8m synth` folder (one is generated when omitted).
        models: comma-separated registry names.
        steps: training steps per model.
        batch_size: videos per step.
        videos: training videos when generating data.
        base_learning_rate: Adam learning rate of models without their own in SMALL.
        seed: seed for data and weights.
        output_dir: where runs go (a temporary folder by default).
        precise_bn_batches: as `y8m train` (0 shows what the lagging moving statistics give).
    """
    from y8m.data.synth import synthesize
    from y8m.run.evaluate import evaluate
    from y8m.run.train import train

    if isinstance(models, (list, tuple)):  # fire turns `--models=a,b` into a tuple
        models = ",".join(str(m) for m in models)
    names = [m.strip() for m in str(models).split(",") if m.strip()]
    workdir = output_dir or tempfile.mkdtemp(prefix="y8m-learn-")
    if data_dir is None:
        data_dir = os.path.join(workdir, "data")
        synthesize(data_dir, videos=int(videos), seed=int(seed), level="frame")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        run_dir = os.path.join(workdir, name)
        train(
            model=name,
            train_data_pattern=os.path.join(data_dir, "frame", "train*.tfrecord"),
            train_dir=run_dir,
            batch_size=int(batch_size),
            max_steps=int(steps),
            seed=int(seed),
            start_new_model=True,
            checkpoint_steps=int(steps),
            precise_bn_batches=int(precise_bn_batches),
            **{"base_learning_rate": float(base_learning_rate), **SMALL.get(name, {})},
        )
        result = evaluate(
            train_dir=run_dir,
            eval_data_pattern=os.path.join(data_dir, "frame", "validate*.tfrecord"),
        )
        rows.append(
            {
                "model": name,
                "gap": round(result["gap"], 4),
                "hit_at_one": round(result["hit_at_one"], 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    print(f"\n{'model':<18} {'val GAP':>8} {'Hit@1':>7} {'seconds':>8}")
    for r in rows:
        print(f"{r['model']:<18} {r['gap']:>8.4f} {r['hit_at_one']:>7.4f} {r['seconds']:>8.1f}")
    figures = {
        "steps": int(steps),
        "batch_size": int(batch_size),
        "videos": int(videos),
        "precise_bn_batches": int(precise_bn_batches),
        **{f"gap_{r['model']}": r["gap"] for r in rows},
    }
    print(json.dumps(figures))
    return figures
