"""Two CPU workers on loopback ports train synchronously with MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys

import pytest

WORKER = """
import json, sys
from y8m.run.train import train
result = train(model="average_logistic", train_data_pattern=sys.argv[1], train_dir=sys.argv[2],
               batch_size=4, max_steps=4, checkpoint_steps=2, num_classes=64, strategy="multi_worker",
               progress=False)
json.dump(result, open(sys.argv[3], "w"))
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_chief_resumes(synth_dir, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    pattern = str(synth_dir / "frame" / "train*.tfrecord")
    run_dir = tmp_path / "run"
    procs, outs = [], []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        out = tmp_path / f"worker{index}.json"
        outs.append(out)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, pattern, str(run_dir), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs[0][-2000:] + logs[1][-2000:]
    results = [json.loads(o.read_text()) for o in outs]
    assert results[0]["step"] == results[1]["step"] == 4
    assert results[0]["weights_fingerprint"] == results[1]["weights_fingerprint"]
    # only the chief wrote the run directory
    assert (run_dir / "model.keras").exists() and (run_dir / "checkpoints").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["replicas"] == 2 and config["train"]["global_batch_size"] == 8

    from y8m.run.train import train

    resumed = train(
        model="average_logistic",
        train_data_pattern=pattern,
        train_dir=str(run_dir),
        batch_size=8,
        max_steps=6,
        num_classes=64,
        progress=False,
    )
    assert resumed["step"] == 6


def test_sharded_eval_and_predict_equal_a_single_worker(synth_dir, tmp_path):
    import threading

    from y8m.predictions import load_predictions
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict
    from y8m.run.train import train

    run = tmp_path / "run"
    train(
        model="average_logistic",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run),
        batch_size=8,
        max_steps=2,
        num_classes=64,
        progress=False,
    )
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    single = evaluate(train_dir=str(run), eval_data_pattern=pattern, progress=False)
    whole = predict(
        train_dir=str(run),
        input_data_pattern=pattern,
        output_file=str(tmp_path / "one"),
        progress=False,
    )
    results = {}

    def worker(i):
        results[("eval", i)] = evaluate(
            train_dir=str(run),
            eval_data_pattern=pattern,
            num_workers=2,
            worker_index=i,
            progress=False,
        )
        results[("predict", i)] = predict(
            train_dir=str(run),
            input_data_pattern=pattern,
            output_file=str(tmp_path / "two"),
            num_workers=2,
            worker_index=i,
            progress=False,
        )

    threads = [threading.Thread(target=worker, args=(i,)) for i in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Nobody waits: whichever worker finished last merged, the other named the missing part.
    (merged,) = [results[("eval", i)] for i in (0, 1) if "gap" in results[("eval", i)]]
    assert merged["num_videos"] == single["num_videos"] == 32
    for key in ("gap", "hit_at_one", "perr", "map", "loss"):
        assert merged[key] == pytest.approx(single[key], abs=1e-6)
    a, b = (
        load_predictions(whole["output_file"]),
        load_predictions(str(tmp_path / "two.parquet")),
    )
    assert sorted(a.ids) == sorted(b.ids) and len(set(b.ids)) == len(b.ids)
    order = {v: i for i, v in enumerate(a.ids)}
    idx = [order[v] for v in b.ids]
    assert (a.classes[idx] == b.classes).all()
    assert not list(tmp_path.glob("two*.part-*"))


def test_explicit_merge_after_a_worker_died_and_missing_parts_named(synth_dir, tmp_path, capsys):
    from y8m.errors import UsageError
    from y8m.predictions import load_predictions
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict
    from y8m.run.train import train

    run = tmp_path / "run"
    train(
        model="average_logistic",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run),
        batch_size=8,
        max_steps=2,
        num_classes=64,
        progress=False,
    )
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    out = str(tmp_path / "preds")
    common = dict(train_dir=str(run), num_workers=3, progress=False)
    first = predict(input_data_pattern=pattern, output_file=out, worker_index=0, **common)
    assert first["output_file"].endswith(".part-00000-of-00003.parquet")
    assert "2 part(s) still missing" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"2 of 3 worker part\(s\) missing.*part-00001-of-00003"):
        predict(output_file=out, merge=True, progress=False)
    predict(input_data_pattern=pattern, output_file=out, worker_index=1, **common)
    # A merge claimed by a worker that was killed: worker 2 writes its part and leaves it.
    (tmp_path / "preds.parquet.merging").touch()
    predict(input_data_pattern=pattern, output_file=out, worker_index=2, **common)
    assert "another worker is merging" in capsys.readouterr().out
    merged = predict(output_file=out, merge=True, progress=False)
    whole = predict(
        train_dir=str(run),
        input_data_pattern=pattern,
        output_file=str(tmp_path / "one"),
        progress=False,
    )
    assert merged["num_videos"] == whole["num_videos"] == 32
    assert not list(tmp_path.glob("preds.parquet.*"))  # parts and the stale claim are gone
    assert sorted(load_predictions(merged["output_file"]).ids) == sorted(
        load_predictions(whole["output_file"]).ids
    )
    for i in (0, 1):
        evaluate(eval_data_pattern=pattern, worker_index=i, **common)
    with pytest.raises(UsageError, match="1 of 3 worker part"):
        evaluate(train_dir=str(run), merge=True, progress=False)
    evaluate(eval_data_pattern=pattern, worker_index=2, **common)
    merged = json.loads((run / "eval.json").read_text())  # the last worker merged
    single = evaluate(train_dir=str(run), eval_data_pattern=pattern, progress=False)
    assert merged["num_videos"] == 32 and merged["gap"] == pytest.approx(single["gap"], abs=1e-6)
    assert not (run / "eval-parts").exists()
