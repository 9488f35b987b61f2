"""One video file -> its official YouTube-8M features: `Extractor`.

rgb: frames at 1 per second (the official selection rule) -> Inception-v3 `pool_3` (2048-d)
-> PCA to 1024 with whitening -> 8 bits by rounding. audio: 16 kHz mono -> VGGish log-mel
examples, one per frame second -> VGGish (128-d) -> its PCA -> 8 bits by truncation. The
video-level `mean_rgb` / `mean_audio` are means of the unquantised PCA features, as the official
extractor writes them (winners_facts.md 6-7).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError

RGB_SIZE, AUDIO_SIZE = specs.RGB.size, specs.AUDIO.size


@dataclasses.dataclass
class VideoFeatures:
    """A video's features. rgb (n, 1024) and audio (n, 128) are uint8 codes, one row per
    second; mean_rgb / mean_audio float32 means of the unquantised features; `audio_source` is
    "vggish", "zero" (--no_audio, as the official --insert_zero_audio_features) or "silent" (the
    file has no audio stream: zero audio too)."""

    video_id: str
    path: str
    rgb: np.ndarray
    audio: np.ndarray
    mean_rgb: np.ndarray
    mean_audio: np.ndarray
    audio_source: str

    @property
    def num_frames(self) -> int:
        return int(len(self.rgb))


def video_id(path: str) -> str:
    """The id a video file gets: its file name without the extension."""
    return os.path.splitext(os.path.basename(path))[0]


class AudioFeatures:
    """VGGish features aligned with the video's frame seconds.

    Args:
        network: `vggish.AudioNetwork` (examples (N, 96, 64) -> (N, 128) embeddings).
        pca: `vggish.VGGishPCA` (`project`, `quantize`).
    """

    def __init__(self, network, pca):
        self.network = network
        self.pca = pca

    def __call__(self, path: str, num_frames: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(codes (num_frames, 128) uint8, mean (128,) float32), or None without an audio
        stream. Seconds the audio does not reach are zero codes (as --no_audio)."""
        from y8m.extract import audio

        waveform = audio.read_audio(path)
        if waveform is None:
            return None
        # One 0.96 s example per second, aligned with the 1 fps frames (MediaPipe's YouTube-8M
        # graph); VGGish's own 0.96 s hop would drift 12 s behind by frame 300.
        examples = audio.log_mel_examples(waveform, hop_seconds=1.0)[:num_frames]
        codes = np.zeros((num_frames, AUDIO_SIZE), np.uint8)
        if not len(examples):
            return codes, np.zeros(AUDIO_SIZE, np.float32)
        projected = self.pca.project(self.network(examples))
        codes[: len(projected)] = self.pca.quantize(projected)
        return codes, projected.mean(axis=0).astype(np.float32)


class Extractor:
    """Turns video files into `VideoFeatures`.

    Args:
        frame_network: `inception.FrameNetwork` (uint8 frames -> (B, 2048)).
        pca: `pca.InceptionPCA` ((N, 2048) -> (N, 1024) whitened).
        audio: `AudioFeatures`, or None for zero audio (--no_audio).
        max_frames: frames kept from the start (the official 300).
        batch_size: frames per network call.
    """

    def __init__(self, frame_network, pca, audio=None, *, max_frames=300, batch_size=32):
        self.frame_network = frame_network
        self.pca = pca
        self.audio = audio
        self.max_frames = int(max_frames)
        self.batch_size = int(batch_size)

    def rgb(self, path: str) -> np.ndarray:
        """(n, 1024) float32 whitened PCA features of the selected frames."""
        from y8m.extract.video import iter_frames

        features, batch = [], []
        for _, image in iter_frames(path, max_frames=self.max_frames):
            batch.append(image)
            if len(batch) == self.batch_size:
                features.append(self.pca(self.frame_network(batch)))
                batch = []
        if batch:
            features.append(self.pca(self.frame_network(batch)))
        if not features:
            return np.zeros((0, RGB_SIZE), np.float32)
        return np.concatenate(features).astype(np.float32)

    def __call__(self, path: str) -> VideoFeatures:
        """The features of one file; `video.VideoError` / `audio.AudioError` if unreadable."""
        from y8m.extract.pca import quantize_round

        rgb = self.rgb(path)
        n = len(rgb)
        audio, source = None, "zero"
        if self.audio is not None and n:
            audio = self.audio(path, n)
            source = "vggish" if audio is not None else "silent"
        codes, mean_audio = audio or (
            np.zeros((n, AUDIO_SIZE), np.uint8),
            np.zeros(AUDIO_SIZE, np.float32),
        )
        return VideoFeatures(
            video_id=video_id(path),
            path=path,
            rgb=quantize_round(rgb),
            audio=codes,
            mean_rgb=rgb.mean(axis=0).astype(np.float32) if n else np.zeros(RGB_SIZE, np.float32),
            mean_audio=mean_audio,
            audio_source=source,
        )


def extract_or_skip(extractor, path: str, skip_bad: bool, skipped: dict) -> VideoFeatures | None:
    """`extractor(path)`; an unreadable file stops with a one-line error, or with SKIP_BAD is
    recorded in SKIPPED (path -> reason) and gives None."""
    from y8m.extract.audio import AudioError
    from y8m.extract.video import VideoError

    try:
        return extractor(path)
    except (VideoError, AudioError) as err:
        if not skip_bad:
            raise UsageError(
                f"cannot read video {path}: {err.reason}; pass --skip_bad to skip it"
            ) from None
        skipped[path] = err.reason
        return None


def make_extractor(
    *,
    inception_graph: str | None = None,
    inception_weights: str | None = None,
    pca_dir: str | None = None,
    vggish_weights: str | None = None,
    vggish_pca: str | None = None,
    no_audio: bool = False,
    max_frames: int = specs.MAX_FRAMES,
    batch_size: int = 32,
) -> Extractor:
    """The extractor the flags describe; a UsageError naming the official file that is missing.

    Nothing is downloaded: every network and PCA file is a local path.
    """
    from y8m.extract.inception import load_frame_network
    from y8m.extract.pca import load_inception_pca

    if not pca_dir:
        raise UsageError(
            "missing --pca_dir: the folder of the official PCA files mean.npy, eigenvals.npy "
            "and eigenvecs.npy (yt8m_pca.tgz of the YouTube-8M starter code)"
        )
    audio = None
    if not no_audio:
        if not vggish_weights or not vggish_pca:
            missing = "--vggish_weights" if not vggish_weights else "--vggish_pca"
            raise UsageError(
                f"missing {missing}: VGGish needs vggish_model.ckpt (or a Keras .weights.h5) and "
                "vggish_pca_params.npz from tensorflow/models research/audioset/vggish; or pass "
                "--no_audio to write zero audio as the official extractor does"
            )
        from y8m.extract.vggish import load_vggish, load_vggish_pca

        audio = AudioFeatures(load_vggish(vggish_weights), load_vggish_pca(vggish_pca))
    return Extractor(
        load_frame_network(inception_graph=inception_graph, inception_weights=inception_weights),
        load_inception_pca(pca_dir),
        audio,
        max_frames=max_frames,
        batch_size=batch_size,
    )
