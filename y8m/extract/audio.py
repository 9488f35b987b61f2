"""Audio of a video file as 16 kHz mono, and VGGish's log-mel examples of it (winners_facts.md 7.1).

The front end is `research/audioset/mel_features.py` + `vggish/vggish_input.py` in numpy.
"""

from __future__ import annotations

import os

import numpy as np

from y8m.errors import UsageError

__all__ = [
    "SAMPLE_RATE",
    "NUM_FRAMES",
    "NUM_BANDS",
    "EXAMPLE_SECONDS",
    "AudioError",
    "read_audio",
    "log_mel_examples",
    "mel_matrix",
]

# vggish_params.py
SAMPLE_RATE = 16_000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_BANDS = 64  # mel bins
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_SECONDS = 0.96
NUM_FRAMES = 96  # STFT frames per example: 0.96 s at 100 frames per second

_WINDOW = int(round(SAMPLE_RATE * STFT_WINDOW_SECONDS))  # 400 samples
_HOP = int(round(SAMPLE_RATE * STFT_HOP_SECONDS))  # 160 samples
_FFT = 2 ** int(np.ceil(np.log2(_WINDOW)))  # 512, so 257 bins
_FRAMES_PER_SECOND = int(round(1.0 / STFT_HOP_SECONDS))  # 100
_CHUNK_FRAMES = 8192  # STFT frames per block: bounds memory on long videos (~17 MB a block)


class AudioError(UsageError):
    """A file whose audio cannot be decoded. `path` and `reason` say which and why.

    A UsageError, so an uncaught one prints as one `error:` line; the pipeline catches it to
    skip the file (`--skip_bad`).
    """

    def __init__(self, path, reason: str):
        super().__init__(f"cannot read the audio of {path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        # The default would call AudioError(message) and fail in a worker process.
        return type(self), (self.path, self.reason)


def read_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """Decodes the first audio stream of a file to mono float32 at `sample_rate`.

    Each channel is resampled by FFmpeg (libswresample) and the channels are then averaged,
    as VGGish's `wavfile_to_examples` does. FFmpeg's own mono downmix is not used: for float
    output it weighs stereo as 0.707 (L + R), not the mean.

    Args:
        path: a video or audio file PyAV (FFmpeg) can open.
        sample_rate: the output rate in Hz.

    Returns:
        The waveform (S,) float32 in [-1, 1] (S may be 0), or None when the file has no audio
        stream.

    Raises:
        AudioError: the file is missing, not a media file, or its audio fails to decode.
    """
    import av

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.audio:
                return None
            return _decode_mono(container, container.streams.audio[0], sample_rate)
    except (av.FFmpegError, OSError, ValueError) as err:
        raise AudioError(path, _reason(err)) from None


def _decode_mono(container, stream, sample_rate: int) -> np.ndarray:
    import av

    parts = []
    resampler, setup = None, None
    for frame in container.decode(stream):
        # A stream may change layout or rate midway (concatenated files): start a new resampler.
        frame_setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if frame_setup != setup:
            if resampler is not None:
                parts += _mono(resampler.resample(None))
            resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sample_rate)
            setup = frame_setup
        parts += _mono(resampler.resample(frame))
    if resampler is not None:
        parts += _mono(resampler.resample(None))
    if not parts:
        return np.zeros((0,), np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def _mono(frames) -> list[np.ndarray]:
    # Planar float: (channels, samples); the channel mean in float64, as the official does.
    return [frame.to_ndarray().astype(np.float64).mean(axis=0) for frame in frames]


def _reason(err: Exception) -> str:
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(reason).split())


def mel_matrix(
    num_spectrogram_bins: int = _FFT // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    num_bands: int = NUM_BANDS,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """The HTK mel filterbank of `mel_features.spectrogram_to_mel_matrix`.

    Triangles are linear in mel (mel = 1127 ln(1 + f / 700)) between band edges evenly spaced
    in mel; the DC bin's weights are zero.

    Returns:
        (num_spectrogram_bins, num_bands) float64 weights A, so that mel = S A.
    """
    if not 0.0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= {sample_rate / 2}")
    bins_mel = _hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_spectrogram_bins))
    edges = np.linspace(_hertz_to_mel(lower_hz), _hertz_to_mel(upper_hz), num_bands + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (num_bands,) each
    rising = (bins_mel[:, None] - lower) / (center - lower)  # (bins, num_bands)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def _hertz_to_mel(hertz):
    return 1127.0 * np.log(1.0 + np.asarray(hertz, np.float64) / 700.0)


def log_mel_examples(
    waveform: np.ndarray, sample_rate: int = SAMPLE_RATE, *, hop_seconds: float = EXAMPLE_SECONDS
) -> np.ndarray:
    """VGGish's input: log-mel patches of 0.96 s (`vggish_input.waveform_to_examples`).

    STFT of 400-sample periodic-Hann frames every 160 samples (FFT 512, magnitude), 64 mel
    bands from 125 to 7500 Hz, log(mel + 0.01), then windows of 96 frames. A tail shorter than
    a frame or a window is dropped.

    Args:
        waveform: (S,) float samples in [-1, 1], mono, at 16 kHz (resample in `read_audio`).
        sample_rate: must be 16000.
        hop_seconds: start-to-start distance of examples; 0.96 (VGGish: back to back) or 1.0
            (MediaPipe's YouTube-8M graph: one example per second, aligned with 1 fps frames).

    Returns:
        (N, 96, 64) float32 examples.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"VGGish needs {SAMPLE_RATE} Hz audio, got {sample_rate}")
    hop_frames = int(round(hop_seconds * _FRAMES_PER_SECOND))
    if hop_frames <= 0 or not np.isclose(hop_frames, hop_seconds * _FRAMES_PER_SECOND):
        raise ValueError(f"hop_seconds must be a positive multiple of 0.01, got {hop_seconds}")
    waveform = np.asarray(waveform, np.float64).reshape(-1)
    log_mel = _log_mel(waveform)  # (F, 64)
    num_examples = max(0, 1 + (len(log_mel) - NUM_FRAMES) // hop_frames)
    starts = np.arange(num_examples) * hop_frames
    index = starts[:, None] + np.arange(NUM_FRAMES)  # (N, 96)
    return log_mel[index].astype(np.float32).reshape(num_examples, NUM_FRAMES, NUM_BANDS)


def _log_mel(waveform: np.ndarray) -> np.ndarray:
    """(S,) float64 -> (F, 64) float64 log-mel frames, F = 1 + (S - 400) // 160 (0 if S < 400)."""
    num_frames = max(0, 1 + (len(waveform) - _WINDOW) // _HOP)
    # Periodic Hann, 0.5 - 0.5 cos(2 pi n / N): mel_features.periodic_hann, not np.hanning.
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_WINDOW) / _WINDOW)
    weights = mel_matrix()
    out = np.empty((num_frames, NUM_BANDS), np.float64)
    for begin in range(0, num_frames, _CHUNK_FRAMES):
        end = min(begin + _CHUNK_FRAMES, num_frames)
        index = (np.arange(begin, end) * _HOP)[:, None] + np.arange(_WINDOW)  # (f, 400)
        magnitude = np.abs(np.fft.rfft(waveform[index] * window, n=_FFT))  # (f, 257)
        out[begin:end] = np.log(magnitude @ weights + LOG_OFFSET)
    return out
