import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extras.howto100m.commands import Commands  # noqa: E402
from tests.extras.howto100m.synthetic import CONCEPTS, write_videos  # noqa: E402
from y8m.errors import UsageError  # noqa: E402


def test_embed_then_eval_matches_direct_eval(data, trained, tmp_path):
    run, _ = trained
    flags = dict(
        checkpoint=str(run),
        captions=data["test_captions"],
        features_2d=data["features_2d"],
        features_3d=data["features_3d"],
        word2vec=data["word2vec"],
        device="cpu",
    )
    out = tmp_path / "emb.npz"
    assert Commands().embed(output=str(out), **flags) == {"output": str(out), "pairs": 60}
    with np.load(out) as arrays:
        assert arrays["text_embedding"].shape == arrays["video_embedding"].shape == (60, 32)
        assert np.allclose(np.linalg.norm(arrays["video_embedding"], axis=1), 1, atol=1e-5)
        assert arrays["video_id"][0] == "test000" and arrays["end"][0] == 5.0
        assert CONCEPTS[0] in " ".join(arrays["text"]) or arrays["text"].shape == (60,)
    metrics_file = tmp_path / "metrics.json"
    direct = Commands().eval(output=str(metrics_file), **flags)
    from_file = Commands().eval(embeddings=str(out))
    for direction in ("text_to_video", "video_to_text"):
        assert from_file[direction] == pytest.approx(direct[direction])
    assert json.loads(metrics_file.read_text())["num_pairs"] == 60


def test_eval_user_errors(data, trained):
    run, _ = trained
    with pytest.raises(UsageError, match="missing --checkpoint"):
        Commands().eval(captions=data["test_captions"])
    with pytest.raises(UsageError, match="14-d clips"):  # trained with both streams
        Commands().eval(
            checkpoint=str(run),
            captions=data["test_captions"],
            features_2d=data["features_2d"],
            word2vec=data["word2vec"],
            device="cpu",
        )
    with pytest.raises(UsageError, match="checkpoint .* not found"):
        Commands().eval(
            checkpoint=str(run / "nothing"),
            captions=data["test_captions"],
            features_2d=data["features_2d"],
            word2vec=data["word2vec"],
        )


def test_localize_crosstask_layout(data, trained, tmp_path):
    run, _ = trained
    steps = [(0, 1), (2, 3), (4, 5), (6, 7)]
    step_text = [f"{CONCEPTS[a]} {CONCEPTS[b]}" for a, b in steps]
    # Two videos of one task whose steps happen in order, 5 s each, every 6 s.
    write_videos(str(tmp_path), ["ctA", "ctB"], [steps, steps], seed=7)
    (tmp_path / "tasks.txt").write_text(f"77\nCook\nhttps://x\n4\n{','.join(step_text)}\n\n")
    (tmp_path / "videos.csv").write_text("77,ctA,u\n77,ctB,u\n77,ctMissing,u\n")
    (tmp_path / "ann").mkdir()
    for vid in ("ctA", "ctB"):
        rows = [f"{k + 1},{6 * k}.0,{6 * k + 5}.0" for k in range(len(steps))]
        (tmp_path / "ann" / f"77_{vid}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "localize.json"
    result = Commands().localize(
        checkpoint=str(run),
        tasks=str(tmp_path / "tasks.txt"),
        videos=str(tmp_path / "videos.csv"),
        annotations=str(tmp_path / "ann"),
        features_2d=str(tmp_path / "f2d"),
        features_3d=str(tmp_path / "f3d"),
        word2vec=data["word2vec"],
        device="cpu",
        output=str(out),
    )
    assert result["num_videos"] == 2 and result["skipped"] == 1
    assert result["recall"] >= 0.6  # chance is about 0.2
    saved = json.loads(out.read_text())
    seconds = saved["predictions"]["77"]["ctA"]
    assert len(seconds) == 4 and seconds == sorted(seconds)


def test_bench_prints_a_table_then_json(capsys):
    Commands().bench(
        embd_dim=16,
        video_dim=12,
        videos_per_batch=3,
        pairs_per_video=2,
        steps=1,
        eval_size=50,
        device="cpu",
    )
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["train_pairs_per_s"] > 0 and figures["eval_size"] == 50
    assert any(line.startswith("train pairs/s") for line in lines[:-1])


def test_embed_options_override_the_checkpoint(data, trained, tmp_path):
    run, _ = trained
    out = tmp_path / "long.npz"
    Commands().embed(
        checkpoint=str(run),
        captions=data["test_captions"],
        features_2d=data["features_2d"],
        features_3d=data["features_3d"],
        word2vec=data["word2vec"],
        videos=data["test_videos"],
        min_time=12.0,
        device="cpu",
        output=str(out),
    )
    with np.load(out) as arrays:
        # Caption 0 [0, 5] grows right over captions 1 and 2 to [0, 17].
        assert (arrays["start"][0], arrays["end"][0]) == (0.0, 17.0)
        assert len(arrays["text"][0].split()) == 12
