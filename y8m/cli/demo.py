"""`y8m demo`: the whole Kaggle workflow on built-in synthetic data, in a few minutes on a CPU."""

from __future__ import annotations

import os
import time

# Three families (cluster pooling, recurrent, video-level), small enough for 2 CPU cores.
DEMO_MODELS = {
    "gated_netvlad": {
        "level": "frame",
        "overrides": {"cluster_size": 32, "hidden_size": 256, "sample_frames": 60},
    },
    "gru": {"level": "frame", "overrides": {"rnn_cells": 128, "rnn_layers": 1}},
    "moe": {"level": "video", "overrides": {}},
}


def run_demo(
    output_dir: str = "demo",
    videos: int = 1500,
    steps: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """synth -> train 3 models -> eval -> predict validate/test -> greedy ensemble -> validated CSV."""
    from ensembles.commands import ensemble
    from submissions.validate import validate_submission
    from y8m.data import read_labels
    from y8m.data.synth import synthesize
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict
    from y8m.run.report.build import report as make_report
    from y8m.run.train import train

    t0 = time.perf_counter()
    data = os.path.join(output_dir, "data")
    if not os.path.exists(os.path.join(data, "vocabulary.csv")):
        synthesize(data, videos=int(videos), seed=int(seed), progress=progress)
    preds = os.path.join(output_dir, "preds")
    report, statistics = {}, {}
    for name, spec in DEMO_MODELS.items():
        level = spec["level"]
        run_dir = os.path.join(output_dir, "runs", name)
        trained = train(
            model=name,
            train_data_pattern=os.path.join(data, level, "train*.tfrecord"),
            train_dir=run_dir,
            batch_size=64,
            max_steps=int(steps),
            base_learning_rate=1e-3,
            seed=int(seed),
            checkpoint_steps=max(int(steps) // 2, 1),
            progress=progress,
            **spec["overrides"],
        )
        result = evaluate(
            train_dir=run_dir,
            eval_data_pattern=os.path.join(data, level, "validate*.tfrecord"),
            progress=progress,
        )
        report[name] = result["gap"]
        statistics[name] = trained.get("precise_bn_batches", 0)
        for split in ("validate", "test"):
            predict(
                train_dir=run_dir,
                input_data_pattern=os.path.join(data, level, f"{split}*.tfrecord"),
                output_file=os.path.join(preds, split, name),
                top_k=100,
                progress=progress,
            )
    submission = os.path.join(output_dir, "submission.csv")
    figures = ensemble(
        validation=os.path.join(preds, "validate", "*.parquet"),
        test=os.path.join(preds, "test", "*.parquet"),
        greedy=7,
        output_file=submission,
    )
    check = validate_submission(
        submission,
        version=2018,
        ids_from=read_labels(os.path.join(data, "frame", "test*.tfrecord"), version=2018),
    )
    from submissions.score import score_submission

    test_gap = score_submission(submission, os.path.join(data, "test_solution.csv"))["gap"]
    page = make_report(
        stores=os.path.join(preds, "validate", "*.parquet"),
        runs=os.path.join(output_dir, "runs", "*"),
        vocabulary=os.path.join(data, "vocabulary.csv"),
        output_dir=os.path.join(output_dir, "report"),
        progress=False,
    )["index"]
    _print_report(report, statistics, figures, submission, check, test_gap, t0)
    print(f"diagnostics (open in a browser): {page}")
    ens_gap = figures.get("validation_gap", figures.get("gap"))
    return {
        "models": report,
        "precise_bn_batches": statistics,
        "ensemble_gap": ens_gap,
        "test_gap": test_gap,
        "submission": submission,
        "report": page,
    }


def _print_report(report, statistics, figures, submission, check, test_gap, t0) -> None:
    print("\ndemo report")
    print(f"{'model':<16} {'validation GAP':>15}  batch-norm statistics")
    for name, gap in report.items():
        n = statistics[name]
        print(
            f"{name:<16} {gap:>15.4f}  "
            + (f"re-estimated on {n} training batches" if n else "none")
        )
    ens_gap = figures.get("validation_gap", figures.get("gap"))
    print(f"{'greedy ensemble':<16} {ens_gap:>15.4f}")
    print(
        f"submission {submission}: valid ({check.get('rows', check.get('num_rows', '?'))} videos), "
        f"test GAP {test_gap:.4f}; {time.perf_counter() - t0:.0f} s in all"
    )
