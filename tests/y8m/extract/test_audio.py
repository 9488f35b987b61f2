"""The VGGish log-mel front end against a loop-by-loop numpy reference written from
winners_facts.md 7.1, and PyAV decoding of generated files to 16 kHz mono."""

import math
import pickle

import numpy as np
import pytest

from tests.y8m.extract.media import write_video
from y8m.errors import UsageError
from y8m.extract import audio


def _hertz_to_mel(hertz):
    return 1127.0 * math.log(1.0 + hertz / 700.0)


def _reference_mel_matrix():
    """(257, 64) weights, bin by bin: HTK triangles linear in mel, 66 edges, DC weight 0."""
    low, high = _hertz_to_mel(125.0), _hertz_to_mel(7500.0)
    edges = [low + (high - low) * i / 65 for i in range(66)]
    matrix = np.zeros((257, 64))
    for band in range(64):
        lower, center, upper = edges[band : band + 3]
        for k in range(1, 257):  # k = 0 (DC) stays 0
            mel = _hertz_to_mel(k * 8000.0 / 256)
            rising = (mel - lower) / (center - lower)
            falling = (upper - mel) / (upper - center)
            matrix[k, band] = max(0.0, min(rising, falling))
    return matrix


def _reference_examples(waveform, hop=96):
    """Frame by frame: 400-sample periodic-Hann frames every 160, |rfft| over 512, log mel."""
    waveform = np.asarray(waveform, np.float64)
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 400) for n in range(400)])
    spectra = []
    start = 0
    while start + 400 <= len(waveform):
        spectra.append(np.abs(np.fft.rfft(waveform[start : start + 400] * window, 512)))
        start += 160
    spectra = np.array(spectra).reshape(-1, 257)
    log_mel = np.log(spectra @ _reference_mel_matrix() + 0.01)
    examples = []
    start = 0
    while start + 96 <= len(log_mel):
        examples.append(log_mel[start : start + 96])
        start += hop
    return np.array(examples).reshape(-1, 96, 64)


def _tone(seconds, hz=440.0, rate=16000, amplitude=0.3, noise=0.0, seed=0):
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    return amplitude * np.sin(2 * np.pi * hz * t) + noise * rng.standard_normal(len(t))


def test_mel_matrix_matches_the_bin_by_bin_reference():
    np.testing.assert_allclose(audio.mel_matrix(), _reference_mel_matrix(), rtol=0, atol=1e-12)
    assert not audio.mel_matrix()[0].any()


def test_rfft_of_a_zero_padded_frame_is_the_plain_dft():
    # The reference's own building block, against the DFT sum written out for a few bins.
    frame = np.random.default_rng(1).standard_normal(400)
    n = np.arange(400)
    for k in (0, 1, 14, 100, 256):
        dft = np.sum(frame * np.exp(-2j * np.pi * k * n / 512))
        assert abs(np.fft.rfft(frame, 512)[k] - dft) < 1e-9


def test_log_mel_examples_match_the_reference():
    waveform = _tone(2.5, noise=0.05)
    examples = audio.log_mel_examples(waveform.astype(np.float32))
    assert examples.shape == (2, 96, 64) and examples.dtype == np.float32
    reference = _reference_examples(waveform.astype(np.float32))
    np.testing.assert_allclose(examples, reference, rtol=0, atol=1e-5)


def test_blocks_of_frames_do_not_change_the_result(monkeypatch):
    waveform = _tone(2.0, noise=0.1, seed=2)
    whole = audio.log_mel_examples(waveform)
    monkeypatch.setattr(audio, "_CHUNK_FRAMES", 7)
    np.testing.assert_array_equal(audio.log_mel_examples(waveform), whole)


def test_one_example_per_second_when_aligned_with_video_frames():
    waveform = _tone(3.5, noise=0.05, seed=3)
    examples = audio.log_mel_examples(waveform, hop_seconds=1.0)
    assert examples.shape == (3, 96, 64)
    np.testing.assert_allclose(examples, _reference_examples(waveform, hop=100), atol=1e-5)
    np.testing.assert_array_equal(examples[0], audio.log_mel_examples(waveform)[0])


def test_a_440_hz_tone_peaks_in_the_mel_band_around_440_hz():
    examples = audio.log_mel_examples(_tone(1.0))
    low, high = _hertz_to_mel(125.0), _hertz_to_mel(7500.0)
    centers = [low + (high - low) * i / 65 for i in range(1, 65)]
    nearest = int(np.argmin([abs(c - _hertz_to_mel(440.0)) for c in centers]))
    assert int(np.argmax(examples.mean(axis=(0, 1)))) == nearest


@pytest.mark.parametrize(
    "samples, count",
    [(0, 0), (399, 0), (15_359, 0), (15_599, 0), (15_600, 1), (30_959, 1), (30_960, 2)],
)
def test_incomplete_frames_and_windows_are_dropped(samples, count):
    # 96 frames need 400 + 95 * 160 = 15600 samples (0.975 s); 192 frames 400 + 191 * 160 = 30960.
    examples = audio.log_mel_examples(np.zeros(samples, np.float32))
    assert examples.shape == (count, 96, 64) and examples.dtype == np.float32


def test_front_end_refuses_other_rates_and_hops():
    with pytest.raises(ValueError, match="16000"):
        audio.log_mel_examples(np.zeros(44_100), sample_rate=44_100)
    with pytest.raises(ValueError, match="hop_seconds"):
        audio.log_mel_examples(np.zeros(16_000), hop_seconds=0.955)
    with pytest.raises(ValueError, match="hop_seconds"):
        audio.log_mel_examples(np.zeros(16_000), hop_seconds=0)


def _dominant_hz(waveform, rate=16000):
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return np.argmax(spectrum) * rate / len(waveform)


def test_read_audio_decodes_a_video_tone_to_16_khz_mono(tmp_path):
    path = tmp_path / "tone.mp4"
    written = write_video(path, seconds=2.0, fps=5, sample_rate=44_100, tone_hz=440.0)
    waveform = audio.read_audio(path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    aac_frame = math.ceil(1024 * 16000 / 44_100)  # 1024 samples at 44.1 kHz
    assert abs(len(waveform) - 2.0 * 16000) <= aac_frame
    assert abs(_dominant_hz(waveform) - 440.0) < 2.0
    middle = waveform[4000:-4000]
    rms = float(np.sqrt(np.mean(middle**2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(written["audio"] ** 2))), rel=0.1)


def _write_wav(path, channels, rate):
    """pcm_s16le WAV of (C, S) float channels; returns the int16 samples written."""
    import av

    samples = np.round(np.asarray(channels) * 32767).astype(np.int16)  # (C, S)
    layout = {1: "mono", 2: "stereo"}[len(samples)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = layout
        packed = samples.T.reshape(1, -1)  # interleaved s16
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return samples


def test_stereo_is_the_mean_of_the_channels(tmp_path):
    # At 16 kHz nothing is resampled: the result is (L + R) / 2 of the int16 / 32768 samples.
    left, right = _tone(1.0, 440.0, amplitude=0.4), _tone(1.0, 1000.0, amplitude=0.2)
    samples = _write_wav(tmp_path / "stereo.wav", [left, right], 16_000)
    waveform = audio.read_audio(tmp_path / "stereo.wav")
    expected = samples.astype(np.float64).mean(axis=0) / 32768
    assert waveform.shape == expected.shape
    np.testing.assert_allclose(waveform, expected, rtol=0, atol=1e-6)


def test_stereo_is_averaged_after_resampling_too(tmp_path):
    # FFmpeg's own float downmix would give 0.707 (L + R): an amplitude of 0.21, not 0.15.
    left = _tone(1.0, 440.0, rate=48_000, amplitude=0.3)
    _write_wav(tmp_path / "stereo48.wav", [left, np.zeros_like(left)], 48_000)
    waveform = audio.read_audio(tmp_path / "stereo48.wav")
    assert abs(len(waveform) - 16_000) <= 32
    assert np.abs(waveform[1000:-1000]).max() == pytest.approx(0.15, abs=0.005)
    assert abs(_dominant_hz(waveform) - 440.0) < 2.0


def test_a_video_without_audio_gives_none(tmp_path):
    write_video(tmp_path / "silent.mp4", seconds=1.0, fps=5, audio=False)
    assert audio.read_audio(tmp_path / "silent.mp4") is None


@pytest.mark.parametrize(
    "name, content", [("broken.mp4", b"not a video " * 100), ("missing.mp4", None)]
)
def test_unreadable_files_raise_an_audio_error_naming_them(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(audio.AudioError) as caught:
        audio.read_audio(path)
    assert caught.value.path == str(path) and caught.value.reason
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, UsageError)


def test_audio_error_survives_pickling():
    # Worker processes hand exceptions back pickled.
    error = pickle.loads(pickle.dumps(audio.AudioError("a.mp4", "bad data")))
    assert (error.path, error.reason, str(error)) == (
        "a.mp4",
        "bad data",
        "cannot read the audio of a.mp4: bad data",
    )
