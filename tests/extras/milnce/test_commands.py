"""End to end on generated mp4s: train, resume, embed, eval, probe, dictionary, bench."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from extras.milnce.commands import Commands  # noqa: E402
from extras.milnce.video import decode_windows, video_info, write_test_video  # noqa: E402
from y8m.errors import UsageError  # noqa: E402

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
}
REPO = Path(__file__).resolve().parents[3]
# Small but not tiny: below ~64 px the last S3D blocks see 1x1 maps and BatchNorm over a batch
# of 4 values per channel makes the loss erratic.
CLIP = dict(num_frames=8, fps=5, video_size=64)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _write_colour_video(path, colour, seed):
    """3 s at 10 fps, 72x96: a solid colour with mild noise."""
    rng = np.random.default_rng(seed)
    frames = np.empty((30, 72, 96, 3), dtype=np.int16)
    frames[:] = colour
    frames += rng.integers(-6, 7, size=frames.shape)
    write_test_video(str(path), np.clip(frames, 0, 255).astype(np.uint8), fps=10)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The learnable pairing: each video is a solid colour and every narration names it."""
    root = tmp_path_factory.mktemp("milnce")
    for sub in ("videos", "captions", "heldout"):
        (root / sub).mkdir()
    for i, (name, colour) in enumerate(COLOURS.items()):
        _write_colour_video(root / "videos" / f"{name}.mp4", colour, seed=i)
        _write_colour_video(root / "heldout" / f"{name}2.mp4", colour, seed=10 + i)
        pd.DataFrame(
            {
                "start": [0.0, 1.0, 2.0],
                "end": [1.0, 2.0, 3.0],
                "text": [f"{name}", f"the {name} one", f"{name} again"],
            }
        ).to_csv(root / "captions" / f"{name}.csv", index=False)
    Commands().dictionary(captions=str(root / "captions"), output=str(root / "dict.npy"))
    return root


def _train(corpus, train_dir, epochs, **overrides):
    options = dict(
        train_dir=str(train_dir),
        videos=str(corpus / "videos" / "*.mp4"),
        captions=str(corpus / "captions"),
        dictionary=str(corpus / "dict.npy"),
        epochs=epochs,
        batch_size=4,
        lr=1e-4,
        warmup_steps=0,
        num_candidates=2,
        min_time=2.0,
        max_words=8,
        num_workers=1,
        checkpoint_every=3,
        progress=False,
        **CLIP,
    )
    options.update(overrides)
    return Commands().train(**options)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """3 epochs, then a re-run to 8 epochs that resumes (one step per epoch)."""
    train_dir = tmp_path_factory.mktemp("run")
    first = _train(corpus, train_dir, epochs=3)
    first_history = json.loads((train_dir / "history.json").read_text())
    second = _train(corpus, train_dir, epochs=8, keep_checkpoints=2)
    return train_dir, first, first_history, second


def test_dictionary_holds_caption_words(corpus):
    # By count (4 each for the shared words, 3 per colour), ties alphabetical.
    words = np.load(corpus / "dict.npy").tolist()
    assert words == ["again", "one", "the", "blue", "green", "red", "yellow"]


def test_train_loss_decreases_and_resume_continues(trained):
    train_dir, first, first_history, second = trained
    assert first["epochs"] == 3 and first["steps"] == 3 and first["resumed_from"] is None
    assert second["resumed_from"].endswith("epoch0003.pth.tar")
    history = json.loads((train_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert [h["step"] for h in history] == list(range(1, 9))
    assert history[:3] == first_history  # the resumed run kept the first run's record
    losses = [h["loss"] for h in history]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses
    assert min(losses) > np.log(2) - 1e-6  # the released form's floor
    assert all(h["skipped"] == 0 for h in history)
    # Checkpoints: every 3 epochs and the last, newest 2 kept, written whole.
    assert sorted(p.name for p in train_dir.glob("epoch*.pth.tar")) == [
        "epoch0006.pth.tar",
        "epoch0008.pth.tar",
    ]
    assert not list(train_dir.glob(".tmp-*"))
    state = torch.load(train_dir / "epoch0008.pth.tar", weights_only=True)
    assert state["epoch"] == 8 and state["step"] == 8
    assert state["model_config"]["space_to_depth"] is False
    assert state["model_config"]["num_embeddings"] == len(state["tokenizer"]["words"]) + 1
    assert state["optimizer"]["state"][0]["step"].item() == 8  # Adam state continued
    assert state["scheduler"]["last_epoch"] == 8
    assert json.loads((train_dir / "config.json").read_text())["train"]["epochs"] == 8


def test_training_skips_broken_videos(corpus, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("red", "green"):
        os.symlink(corpus / "videos" / f"{name}.mp4", videos / f"{name}.mp4")
    (videos / "blue.mp4").write_bytes(b"not a video" * 20)  # captions exist, file is broken
    result = _train(
        corpus,
        tmp_path / "run",
        epochs=1,
        batch_size=3,
        videos=str(videos / "*.mp4"),
        num_workers=0,
    )
    assert result["skipped"] >= 1 and result["steps"] == 1


def test_embed_matches_direct_model_computation(trained, corpus, tmp_path):
    train_dir = trained[0]
    out = tmp_path / "videos.npy"
    result = Commands().embed(
        checkpoint=str(train_dir),
        output=str(out),
        videos=str(corpus / "videos" / "*.mp4"),
        num_windows=2,
        num_workers=0,
        progress=False,
        **CLIP,
    )
    assert result["rows"] == 4 and result["dim"] == 512 and result["skipped"] == 0
    names = (tmp_path / "videos.txt").read_text().split()
    assert [Path(n).stem for n in names] == sorted(COLOURS)
    embedded = np.load(out)
    from extras.milnce.checkpoint import load_model

    model, tokenizer, meta = load_model(str(train_dir / "epoch0008.pth.tar"))
    assert meta["epoch"] == 8
    with torch.no_grad():
        for row, path in zip(embedded, names):
            duration, _ = video_info(path)
            starts = np.linspace(0, duration - 8 / 5, 2)
            clip = decode_windows(path, starts, 8, 5, 64, crop="center")
            video = torch.from_numpy(clip).float() / 255
            expected = model(video)["video_embedding"].mean(dim=0).numpy()
            # norm-wise: the channels-last convolutions round differently per batch shape
            assert np.linalg.norm(row - expected) < 1e-4 * np.linalg.norm(expected)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("the red one\nblue again\n")
    Commands().embed(
        checkpoint=str(train_dir), output=str(tmp_path / "text.npy"), sentences=str(sentences)
    )
    text = np.load(tmp_path / "text.npy")
    with torch.no_grad():
        expected = model.text_module(tokenizer(["the red one", "blue again"], max_words=30))
    np.testing.assert_allclose(text, expected["text_embedding"].numpy(), rtol=1e-5, atol=1e-6)


def _brute_force_ranks(similarity):
    return [
        sum(1 for j in range(len(row)) if j != i and row[j] >= row[i])
        for i, row in enumerate(similarity)
    ]


def test_eval_ranks_clips_against_the_whole_set(trained, corpus, tmp_path):
    names = sorted(COLOURS)
    # The checkpoint's BatchNorm statistics were re-estimated (--precise_bn_batches): with the
    # 8-step run's running averages the clips' embeddings would differ by ~1e-9 and the ranks
    # would be decided by float noise.
    train_dir = str(trained[0])
    duration, _ = video_info(str(corpus / "videos" / "red.mp4"))
    clips = tmp_path / "clips.csv"
    rows = [{"video_id": n, "start": 0.0, "end": duration, "text": f"the {n} one"} for n in names]
    rows.append({"video_id": "missing", "start": 0.0, "end": 1.0, "text": "red"})
    pd.DataFrame(rows).to_csv(clips, index=False)
    output = tmp_path / "eval.json"
    result = Commands().eval(
        checkpoint=str(train_dir),
        clips=str(clips),
        video_root=str(corpus / "videos"),
        output=str(output),
        num_windows=2,
        num_workers=0,
        progress=False,
        **CLIP,
    )
    assert result["num_clips"] == 4 and result["skipped"] == 1
    assert json.loads(output.read_text())["text_to_video"] == result["text_to_video"]
    # Same numbers from the embed command's matrices and a brute-force ranking.
    Commands().embed(
        checkpoint=str(train_dir),
        output=str(tmp_path / "v.npy"),
        videos=str(corpus / "videos" / "*.mp4"),
        num_windows=2,
        num_workers=0,
        progress=False,
        **CLIP,
    )
    (tmp_path / "s.txt").write_text("".join(f"the {n} one\n" for n in names))
    Commands().embed(
        checkpoint=str(train_dir), output=str(tmp_path / "t.npy"), sentences=str(tmp_path / "s.txt")
    )
    similarity = np.load(tmp_path / "t.npy") @ np.load(tmp_path / "v.npy").T
    for key, matrix in (("text_to_video", similarity), ("video_to_text", similarity.T)):
        ranks = np.array(_brute_force_ranks(matrix))
        metrics = result[key]
        assert metrics["r1"] == pytest.approx(np.mean(ranks == 0))
        assert metrics["r5"] == 1.0  # 4 candidates
        assert metrics["median_rank"] == pytest.approx(np.median(ranks) + 1)


def test_probe_separates_colours(trained, corpus, tmp_path):
    names = sorted(COLOURS)
    rows = [{"video_id": n, "label": n, "split1": 1, "split2": 2} for n in names]
    rows += [{"video_id": f"{n}2", "label": n, "split1": 2, "split2": 1} for n in names]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    checkpoint = str(trained[0])  # statistics re-estimated by train (--precise_bn_batches)
    result = Commands().probe(
        checkpoint=checkpoint,
        labels=str(labels),
        video_root=str(corpus),
        output=str(tmp_path / "probe.json"),
        num_windows=2,
        num_frames=8,
        video_size=64,
        num_workers=0,
        progress=False,
    )
    assert set(result["splits"]) == {"split1", "split2"}
    assert result["num_classes"] == 4 and result["skipped"] == 0
    for split in result["splits"].values():
        assert split["num_train"] == 4 and split["num_test"] == 4
        assert split["top1"] == 1.0
    assert json.loads((tmp_path / "probe.json").read_text())["mean_top1"] == 1.0
    with pytest.raises(UsageError):
        Commands().probe(checkpoint=checkpoint, labels=str(labels), splits="split9")


def test_probe_split_sums_window_decisions():
    from sklearn.svm import LinearSVC

    from extras.milnce.probe import probe_split

    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 3, 5))
    labels = np.arange(12) % 3
    features[:, :, 0] += labels[:, None] * 2.0
    split = np.array([1] * 6 + [2] * 6)
    result = probe_split(features, labels, split, C=1.0)
    svm = LinearSVC(C=1.0, max_iter=10_000).fit(
        features[:6].reshape(-1, 5), np.repeat(labels[:6], 3)
    )
    votes = np.stack([svm.decision_function(features[i]).sum(axis=0) for i in range(6, 12)])
    assert result["top1"] == pytest.approx(np.mean(votes.argmax(axis=1) == labels[6:]))
    assert result["num_train"] == 6 and result["num_test"] == 6


def test_usage_errors(corpus, tmp_path):
    commands = Commands()
    with pytest.raises(UsageError):
        commands.train(train_dir=str(tmp_path / "r"), videos="x")
    with pytest.raises(UsageError):
        _train(corpus, tmp_path / "r", epochs=1, loss="symmetric")
    with pytest.raises(UsageError):
        _train(corpus, tmp_path / "r", epochs=1, batch_size=5)  # only 4 videos
    with pytest.raises(UsageError):
        _train(corpus, tmp_path / "r2", epochs=1, dictionary="")  # new run needs a dictionary
    with pytest.raises(UsageError):
        commands.embed(checkpoint=str(tmp_path), output=str(tmp_path / "x.npy"), sentences="s.txt")
    with pytest.raises(UsageError):
        commands.embed(checkpoint="c", output="x.txt", sentences="s.txt")
    with pytest.raises(UsageError):
        commands.eval(checkpoint="c", clips=str(tmp_path / "missing.csv"))


def test_released_state_dict_needs_a_dictionary(tmp_path):
    from extras.milnce import S3D
    from extras.milnce.checkpoint import load_model
    from extras.milnce.text import save_dictionary

    model = S3D(space_to_depth=True, num_embeddings=5)
    path = tmp_path / "plain.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # DDP-style keys
    with pytest.raises(UsageError):
        load_model(str(path))
    save_dictionary(["cut", "onion", "pan", "oil"], str(tmp_path / "d.npy"))
    loaded, tokenizer, meta = load_model(str(path), str(tmp_path / "d.npy"))
    assert loaded.space_to_depth and meta["source"] == "state_dict"
    assert tokenizer.lowercase and tokenizer.encode("Cut the ONION").tolist()[:2] == [1, 2]
    torch.testing.assert_close(loaded.fc.weight, model.fc.weight)
    video_only, _, _ = load_model(str(path), require_dictionary=False)
    assert video_only.text_module.word_embd.num_embeddings == 5


def test_toy_and_bench_smoke(tmp_path, capsys):
    paths = Commands().toy(output_dir=str(tmp_path / "toy"), num_videos=2)
    assert len(os.listdir(paths["videos"])) == 2 and os.path.isfile(paths["dict"])
    from extras.milnce.bench import run_bench

    figures = run_bench(
        batch_size=2,
        num_frames=4,
        size=32,
        steps=1,
        rounds=2,
        num_videos=2,
        num_workers=0,
        loader_batches=2,
        video_height=48,
        video_width=64,
        video_seconds=2.0,
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == figures
    assert figures["train_clips_per_s"] > 0 and figures["loader_clips_per_s"] > 0
    assert figures["variants"][:3] == ["plain", "plain_kept", "fast"]
    assert len(figures["speedup_rounds"]) == 2 and figures["speedup_vs_plain"] > 0
    # same weights, same batch, same layout: the same first loss (the layouts' equality is
    # tested in float64 in test_s3d_layout: in float32, batch statistics over this tiny clip's
    # 2x1x1 last positions amplify rounding)
    assert figures["plain_kept_loss_abs_diff_vs_plain"] == 0.0
    assert figures["loss_abs_diff_vs_plain"] < 1.0
    assert {"device_name", "device_memory_gb"} <= set(figures)
    assert figures["precise_bn_s_per_200_batches"] > 0 and figures["precise_bn_batches"] == 5
    assert figures["loader_skipped"] == 0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_then_single_process_resume(corpus, tmp_path):
    train_dir = tmp_path / "ddp"
    flags = [
        f"--train_dir={train_dir}",
        f"--videos={corpus / 'videos' / '*.mp4'}",
        f"--captions={corpus / 'captions'}",
        f"--dictionary={corpus / 'dict.npy'}",
        "--epochs=2",
        "--batch_size=4",
        "--lr=1e-4",
        "--warmup_steps=0",
        "--num_candidates=2",
        "--min_time=2.0",
        "--num_workers=0",
        "--progress=False",
        "--num_frames=8",
        "--fps=5",
        "--video_size=64",
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "extras.milnce.launch",
        *flags,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((train_dir / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2]  # global batch 4 = 2 per process, 4 videos
    state = torch.load(train_dir / "epoch0002.pth.tar", weights_only=True)
    assert not any(k.startswith("module.") for k in state["state_dict"])
    assert state["train_config"]["batch_size"] == 4
    # The distributed checkpoint resumes in a single process.
    result = _train(corpus, train_dir, epochs=3, num_workers=0)
    assert result["resumed_from"].endswith("epoch0002.pth.tar") and result["steps"] == 3


def test_commands_import_without_torch():
    code = (
        "import sys; import extras.milnce, extras.milnce.commands; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
