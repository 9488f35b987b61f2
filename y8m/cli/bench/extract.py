"""`y8m bench extract`: frames/s of `y8m extract`'s stages on generated videos.

The networks are the real architectures (Keras InceptionV3, VGGish) with seeded stand-in
weights, so the compute is what the official files cost; pass the official files to time those.
"""

from __future__ import annotations

import json
import os
import tempfile
import time


def bench_extract(
    videos: int = 3,
    seconds: float = 10.0,
    fps: int = 25,
    width: int = 640,
    height: int = 360,
    batch_size: int = 32,
    inception_graph: str | None = None,
    inception_weights: str | None = None,
    pca_dir: str | None = None,
    vggish_weights: str | None = None,
    vggish_pca: str | None = None,
    workdir: str | None = None,
    seed: int = 0,
) -> dict:
    """Times decoding, the frame network, the audio network and the whole extraction.

    Args:
        videos: generated videos.
        seconds, fps, width, height: their length and format (MPEG-4 with an AAC tone).
        batch_size: frames per network call.
        inception_graph, inception_weights, pca_dir, vggish_weights, vggish_pca: official files
            to time instead of the stand-ins (random Keras InceptionV3 and VGGish weights).
        workdir: where videos and stand-ins go (a temporary folder by default).
        seed: seed of the videos and stand-in weights.
    """
    from y8m.extract import standins
    from y8m.extract.features import make_extractor
    from y8m.extract.media import write_video
    from y8m.extract.video import iter_frames

    work = workdir or tempfile.mkdtemp(prefix="y8m-bench-extract-")
    paths = []
    for i in range(int(videos)):
        paths.append(os.path.join(work, f"clip{i}.mp4"))
        write_video(paths[-1], seconds=float(seconds), fps=int(fps), size=(int(width), int(height)),
                    seed=int(seed) + i)  # fmt: skip
    if not (inception_graph or inception_weights):
        inception_weights = standins.write_keras_inception(
            os.path.join(work, "inception.weights.h5"), int(seed)
        )
    if not pca_dir:
        pca_dir = os.path.join(work, "pca")
        standins.write_inception_pca(pca_dir, int(seed))
    if not vggish_weights:
        vggish_weights = standins.write_vggish_weights(os.path.join(work, "vggish.weights.h5"))
    if not vggish_pca:
        vggish_pca = os.path.join(work, "vggish_pca.npz")
        standins.write_vggish_pca(vggish_pca, int(seed))
    extractor = make_extractor(inception_graph=inception_graph, inception_weights=inception_weights,
                               pca_dir=pca_dir, vggish_weights=vggish_weights,
                               vggish_pca=vggish_pca, batch_size=int(batch_size))  # fmt: skip
    extractor(paths[0])  # traces the networks
    t0 = time.perf_counter()
    frames = sum(1 for path in paths for _ in iter_frames(path))
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path in paths:
        extractor.rgb(path)
    rgb_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path in paths:
        extractor.audio(path, int(seconds) + 1)
    audio_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path in paths:
        extractor(path)
    total_s = time.perf_counter() - t0
    figures = {
        "videos": int(videos),
        "frames": frames,
        "decode_frames_per_s": round(frames / decode_s, 1),
        "rgb_frames_per_s": round(frames / rgb_s, 2),
        "audio_seconds_per_s": round(int(videos) * float(seconds) / audio_s, 2),
        "frames_per_s": round(frames / total_s, 2),
        "network": extractor.frame_network.name,
        "batch_size": int(batch_size),
    }
    print(f"{'stage':<28} {'rate':>12}")
    print(f"{'decode + select (1 fps)':<28} {figures['decode_frames_per_s']:>9} f/s")
    print(f"{'rgb: network + PCA':<28} {figures['rgb_frames_per_s']:>9} f/s")
    print(f"{'audio: log-mel + VGGish':<28} {figures['audio_seconds_per_s']:>9} s/s")
    print(f"{'whole extraction':<28} {figures['frames_per_s']:>9} f/s")
    print(json.dumps(figures))
    return figures
