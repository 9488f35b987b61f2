"""`y8m extract` end to end on generated videos and stand-in official files: valid records, one
frame per second, features equal to a reference pipeline written from the facts to one step,
resumable shards, bad files named, and `y8m predict --videos` equal to extract + predict."""

from __future__ import annotations

import numpy as np
import pytest

from y8m.data import specs
from y8m.errors import UsageError
from y8m.extract import standins
from y8m.extract.dataset import extract, read_label_file
from y8m.extract.media import write_video

DURATIONS = {"alpha": 3.4, "beta": 5.2, "gamma": 1.5}  # seconds at 5 fps


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    videos = root / "videos"
    videos.mkdir()
    written = {
        name: write_video(videos / f"{name}.mp4", seconds=seconds, fps=5, seed=i)
        for i, (name, seconds) in enumerate(DURATIONS.items())
    }
    pca = standins.write_inception_pca(str(root / "pca"), seed=1)
    graph = standins.write_inception_graph(str(root / "graph.pb"), seed=2)
    vggish = standins.write_vggish_weights(str(root / "vggish.weights.h5"), seed=3)
    vggish_pca = standins.write_vggish_pca(str(root / "vggish_pca.npz"), seed=4)
    (root / "labels.csv").write_text("video,labels\nvideos/alpha.mp4,3;7\nbeta,11\n")
    return {
        "root": root,
        "glob": str(videos / "*.mp4"),
        "written": written,
        "pca": pca,
        "flags": dict(inception_graph=graph, pca_dir=str(root / "pca")),
        "audio": dict(vggish_weights=vggish, vggish_pca=str(root / "vggish_pca.npz")),
        "vggish_pca": vggish_pca,
        "labels": str(root / "labels.csv"),
    }


def _records(pattern):
    import glob

    import tensorflow as tf

    out = {}
    for path in sorted(glob.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path):
            out[path, len(out)] = raw.numpy()
    return list(out.values())


def _sequence(raw):
    import tensorflow as tf

    example = tf.train.SequenceExample.FromString(raw)
    lists = example.feature_lists.feature_list
    frames = {
        name: np.stack(
            [np.frombuffer(f.bytes_list.value[0], np.uint8) for f in lists[name].feature]
        )
        for name in ("rgb", "audio")
    }
    context = example.context.feature
    return (
        context["id"].bytes_list.value[0].decode(),
        list(context["labels"].int64_list.value),
        frames,
        context,
    )


def _reference_rgb(path, assets):
    """The official pipeline written from winners_facts.md 6.1-6.3: OpenCV's loop over the
    decoded frames, the graph fed one image at DecodeJpeg:0, the PCA formula, rounding."""
    import av

    from y8m.extract.inception import GraphNetwork

    with av.open(path) as container:
        decoded = [
            (float(f.time) * 1000, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)
        ]
    kept, last = [], -99999.0
    for ms, image in decoded:
        if ms >= last + 1000.0 and len(kept) < 300:
            kept.append(image)
            last = ms
    network = GraphNetwork(assets["flags"]["inception_graph"], batched=False)
    x = network(kept).astype(np.float64)
    mean = assets["pca"]["mean.npy"][:, 0]
    eigenvals = assets["pca"]["eigenvals.npy"][:1024, 0]
    eigenvecs = assets["pca"]["eigenvecs.npy"].T[:, :1024]
    f = ((x - mean) @ eigenvecs) / np.sqrt(eigenvals + 1e-4)
    return f, np.round((np.clip(f, -2, 2) + 2) * 255 / 4).astype(np.uint8)


def test_extract_writes_valid_official_records(assets, tmp_path):
    from y8m.data.inspect import inspect_records

    out = tmp_path / "out"
    result = extract(assets["glob"], str(out), labels=assets["labels"], shards=2, level="both",
                     no_audio=True, progress=False, **assets["flags"])  # fmt: skip
    assert result["videos"] == 3 and result["skipped"] == {}
    report = inspect_records(str(out / "frame" / "*.tfrecord"))
    assert report["valid"] and report["videos"] == 3
    assert inspect_records(str(out / "video" / "*.tfrecord"))["valid"]
    by_id = {}
    for raw in _records(str(out / "frame" / "*.tfrecord")):
        vid, labels, frames, context = _sequence(raw)
        by_id[vid] = (labels, frames, context)
    assert sorted(by_id) == sorted(DURATIONS)
    assert by_id["alpha"][0] == [3, 7] and by_id["beta"][0] == [11] and by_id["gamma"][0] == []
    from y8m.data.readers import iterate, read_frames

    pattern = str(out / "frame" / "*.tfrecord")
    (batch,) = list(iterate(read_frames(pattern, batch_size=8), pattern))
    counts = dict(zip((x.decode() for x in batch["id"]), batch["num_frames"]))
    assert counts == {k: int(np.floor(v - 1e-9)) + 1 for k, v in DURATIONS.items()}
    for name, seconds in DURATIONS.items():  # one frame per second, from 0
        frames = by_id[name][1]
        assert len(frames["rgb"]) == len(frames["audio"]) == int(np.floor(seconds - 1e-9)) + 1
        assert not frames["audio"].any()  # --no_audio: zero codes, as the official extractor
        assert not np.any(by_id[name][2]["mean_audio"].float_list.value)


def test_features_equal_the_reference_pipeline_to_one_step(assets, tmp_path):
    out = tmp_path / "out"
    extract(assets["glob"], str(out), level="both", no_audio=True, progress=False,
            **assets["flags"])  # fmt: skip
    means = {}
    import tensorflow as tf

    for raw in _records(str(out / "video" / "*.tfrecord")):
        example = tf.train.Example.FromString(raw).features.feature
        means[example["id"].bytes_list.value[0].decode()] = np.array(
            example["mean_rgb"].float_list.value
        )
    step = 4 / 255
    for raw in _records(str(out / "frame" / "*.tfrecord")):
        vid, _, frames, _ = _sequence(raw)
        f, codes = _reference_rgb(str(assets["root"] / "videos" / f"{vid}.mp4"), assets)
        got = specs.dequantize(frames["rgb"])
        assert got.shape == (len(f), 1024)
        assert np.abs(got - specs.dequantize(codes)).max() <= step + 1e-6
        assert np.mean(frames["rgb"] == codes) > 0.99  # batching changes (almost) no code
        np.testing.assert_allclose(means[vid], f.mean(axis=0), atol=1e-4)


def test_audio_features_follow_vggish(assets, tmp_path):
    from y8m.extract import audio
    from y8m.extract.vggish import load_vggish

    out = tmp_path / "out"
    extract(assets["glob"], str(out), max_frames=3, progress=False, **assets["flags"],
            **assets["audio"])  # fmt: skip
    network = load_vggish(assets["audio"]["vggish_weights"])
    vectors, mu = assets["vggish_pca"]
    for raw in _records(str(out / "frame" / "*.tfrecord")):
        vid, _, frames, context = _sequence(raw)
        n = len(frames["rgb"])
        assert n == min(3, int(np.floor(DURATIONS[vid] - 1e-9)) + 1)  # --max_frames caps
        waveform = audio.read_audio(str(assets["root"] / "videos" / f"{vid}.mp4"))
        examples = audio.log_mel_examples(waveform, hop_seconds=1.0)[:n]
        y = (vectors @ (network(examples).astype(np.float64) - mu).T).T
        codes = np.zeros((n, 128), np.uint8)
        codes[: len(y)] = np.floor((np.clip(y, -2, 2) + 2) * 255 / 4).astype(np.uint8)
        assert np.abs(frames["audio"].astype(int) - codes).max() <= 1
        np.testing.assert_allclose(context["mean_audio"].float_list.value, y.mean(0), atol=1e-4)


def test_a_rerun_resumes_and_other_settings_are_refused(assets, tmp_path, monkeypatch):
    out = tmp_path / "out"
    flags = dict(shards=3, no_audio=True, progress=False, **assets["flags"])
    extract(assets["glob"], str(out), **flags)
    before = {p.name: p.read_bytes() for p in (out / "frame").iterdir()}
    (out / "manifests" / "videos0001.json").unlink()  # as if killed before shard 1 finished
    (out / "frame" / "videos0001.tfrecord").unlink()
    from y8m.extract import features

    calls = []
    real = features.Extractor.__call__
    monkeypatch.setattr(
        features.Extractor, "__call__", lambda self, p: calls.append(p) or real(self, p)
    )
    extract(assets["glob"], str(out), **flags)
    assert len(calls) == 1  # only the unfinished shard's video
    assert {p.name: p.read_bytes() for p in (out / "frame").iterdir()} == before
    with pytest.raises(UsageError, match="other settings \\(shards\\)"):
        extract(assets["glob"], str(out), **{**flags, "shards": 2})


def test_bad_videos_are_named_or_skipped(assets, tmp_path):
    import shutil

    videos = tmp_path / "videos"
    shutil.copytree(assets["root"] / "videos", videos)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 500)
    flags = dict(no_audio=True, progress=False, **assets["flags"])
    with pytest.raises(UsageError, match="cannot read video .*broken.mp4.*--skip_bad"):
        extract(str(videos / "*.mp4"), str(tmp_path / "a"), **flags)
    result = extract(str(videos / "*.mp4"), str(tmp_path / "b"), skip_bad=True, **flags)
    assert result["videos"] == 3 and list(result["skipped"]) == [str(videos / "broken.mp4")]


def test_missing_official_files_name_them(assets, tmp_path):
    with pytest.raises(UsageError, match="mean.npy, eigenvals.npy and eigenvecs.npy"):
        extract(assets["glob"], str(tmp_path / "a"), no_audio=True,
                inception_graph=assets["flags"]["inception_graph"])  # fmt: skip
    with pytest.raises(UsageError, match="vggish_model.ckpt .* --no_audio"):
        extract(assets["glob"], str(tmp_path / "b"), **assets["flags"])
    with pytest.raises(UsageError, match="classify_image_graph_def.pb"):
        extract(
            assets["glob"], str(tmp_path / "c"), no_audio=True, pca_dir=assets["flags"]["pca_dir"]
        )


def test_label_files(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("a/b/clip1.mp4,1;2\nclip2,5 6\n\n")
    assert read_label_file(str(path)) == {"clip1": [1, 2], "clip2": [5, 6]}
    path.write_text("clip1,1;2\nclip2,x\n")
    with pytest.raises(UsageError, match="line 2: labels 'x' are not integers"):
        read_label_file(str(path))


@pytest.mark.parametrize("level", ["frame", "video"])
def test_predict_videos_equals_extract_then_predict(assets, tmp_path, level):
    from y8m.predictions import load_predictions
    from y8m.run.predict import predict
    from y8m.run.train import train

    data = tmp_path / "data"
    extract(assets["glob"], str(data), level="both", no_audio=True, progress=False,
            **assets["flags"])  # fmt: skip
    run = tmp_path / "run"
    model = "average_logistic" if level == "frame" else "logistic"
    train(model=model, train_data_pattern=str(data / level / "*.tfrecord"), train_dir=str(run),
          max_steps=3, batch_size=2, precise_bn_batches=0, progress=False, num_classes=20)  # fmt: skip
    vocabulary = tmp_path / "vocabulary.csv"
    vocabulary.write_text(
        "Index,Name,Vertical1\n" + "".join(f"{c},class {c},v\n" for c in range(20))
    )
    on_records = predict(train_dir=str(run), input_data_pattern=str(data / level / "*.tfrecord"),
                         output_file=str(tmp_path / "records"), progress=False)  # fmt: skip
    on_videos = predict(train_dir=str(run), videos=assets["glob"], output_file=str(tmp_path / "v"),
                        no_audio=True, progress=False, vocabulary=str(vocabulary),
                        **assets["flags"])  # fmt: skip
    a, b = load_predictions(on_records["output_file"]), load_predictions(on_videos["output_file"])
    order_a, order_b = np.argsort(a.ids), np.argsort(b.ids)
    assert list(a.ids[order_a]) == list(b.ids[order_b]) == sorted(DURATIONS)
    np.testing.assert_array_equal(a.classes[order_a], b.classes[order_b])
    np.testing.assert_allclose(a.scores[order_a], b.scores[order_b], atol=1e-6)
    assert b.metadata["split"] == "videos"
    names = (tmp_path / "v.names.csv").read_text().splitlines()
    assert names[0] == "VideoId,Rank,Class,Name,Vertical,Score" and len(names) == 1 + 3 * 20
    assert names[1].split(",")[3] == f"class {names[1].split(',')[2]}"
