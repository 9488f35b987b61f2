"""`y8m bench pack`: on planted data, the budgeted greedy ensemble (models and precisions under
`--max_mb`) against the unconstrained greedy and the best single model: GAP and megabytes, and
the packed model's file size."""

from __future__ import annotations

import json
import os
import tempfile

from y8m.cli.bench.learn import SMALL

# The small versions `y8m bench learn` compares: they learn the planted data in a short budget.
MODELS = {name: SMALL[name] for name in ("gated_netvlad", "nextvlad", "gated_dbof")}


def bench_pack(
    steps: int = 150,
    videos: int = 1200,
    batch_size: int = 64,
    budget_fraction: float = 0.35,
    precisions: str = "float32,float16,int8",
    greedy: int = 5,
    workdir: str | None = None,
    seed: int = 0,
) -> dict:
    """Trains three small models, predicts them at every precision, ensembles with and without
    a budget of BUDGET_FRACTION of the unconstrained ensemble's megabytes, and packs the
    budgeted one.

    Args:
        steps: training steps per model.
        videos: planted training videos.
        batch_size: videos per step.
        budget_fraction: the budget as a fraction of the unconstrained ensemble's size.
        precisions: the precisions the budgeted ensemble may use.
        greedy: greedy steps.
        workdir: where data, runs and stores go (a temporary folder by default).
        seed: seed of data and weights.
    """
    from ensembles.commands import ensemble
    from y8m.data.synth import synthesize
    from y8m.run.pack import pack
    from y8m.run.precision_stores import precision_stores
    from y8m.run.train import train

    if isinstance(precisions, (list, tuple)):  # fire turns `a,b` into a tuple
        precisions = ",".join(precisions)
    work = workdir or tempfile.mkdtemp(prefix="y8m-bench-pack-")
    data = os.path.join(work, "data")
    synthesize(data, videos=int(videos), seed=int(seed), level="frame", progress=False)
    validate = os.path.join(data, "frame", "validate*.tfrecord")
    for name, sizes in MODELS.items():
        train(model=name, train_data_pattern=os.path.join(data, "frame", "train*.tfrecord"),
              train_dir=os.path.join(work, "runs", name), batch_size=int(batch_size),
              max_steps=int(steps), seed=int(seed), base_learning_rate=1e-3,
              precise_bn_batches=50, progress=False, **sizes)  # fmt: skip
    runs = os.path.join(work, "runs", "*")
    stores = precision_stores(runs, precisions, validate, progress=False)
    float32 = ",".join(s["validation"] for s in stores if s["precision"] == "float32")
    full = ensemble(validation=float32, greedy=int(greedy),
                    output_file=os.path.join(work, "full", "full.csv"))  # fmt: skip
    budget = float(budget_fraction) * full["total_mb"]
    every = ",".join(s["validation"] for s in stores)
    budgeted = ensemble(validation=every, greedy=int(greedy), max_mb=budget,
                        output_file=os.path.join(work, "budget", "budget.csv"))  # fmt: skip
    packed = pack(recipe=budgeted["recipe"], output_file=os.path.join(work, "ensemble.keras"),
                  progress=False)  # fmt: skip
    best = full["best_single_model"]
    sizes = {s["model_name"]: s["model_bytes"] / 1e6 for s in stores}
    with open(budgeted["recipe"], encoding="utf-8") as f:
        singles = json.load(f)["single_model_gaps"]
    print(f"\n{'candidate':<28} {'val GAP':>8} {'MB':>9}")
    for name in sorted(singles, key=singles.get, reverse=True):
        print(f"{name:<28} {singles[name]:>8.4f} {sizes[name]:>9.2f}")
    figures = {
        "best_single": best,
        "best_single_gap": round(full["best_single_gap"], 4),
        "best_single_mb": round(sizes[best], 2),
        "greedy_gap": round(full["validation_gap"], 4),
        "greedy_mb": round(full["total_mb"], 2),
        "budget_mb": round(budget, 2),
        "budgeted_gap": round(budgeted["validation_gap"], 4),
        "budgeted_mb": round(budgeted["total_mb"], 2),
        "budgeted_models": budgeted["weights"],
        "packed_file_mb": round(os.path.getsize(packed["output_file"]) / 1e6, 2),
        "candidates": {n: [round(g, 4), round(sizes[n], 2)] for n, g in singles.items()},
    }
    print(f"\n{'ensemble':<28} {'val GAP':>8} {'MB':>9}")
    print(f"{'best single (' + best + ')':<28} {figures['best_single_gap']:>8.4f} {figures['best_single_mb']:>9.2f}")  # fmt: skip
    print(f"{'greedy, no budget':<28} {figures['greedy_gap']:>8.4f} {figures['greedy_mb']:>9.2f}")
    print(f"{'greedy, budget ' + str(figures['budget_mb']) + ' MB':<28} "
          f"{figures['budgeted_gap']:>8.4f} {figures['budgeted_mb']:>9.2f}")  # fmt: skip
    print(
        f"packed model file: {figures['packed_file_mb']} MB; budgeted picks: {budgeted['weights']}"
    )
    print(json.dumps(figures))
    return figures
