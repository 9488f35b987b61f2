"""Small seeded videos written with PyAV: test inputs and the bench's workload (nothing shipped)."""

from __future__ import annotations

import fractions

import numpy as np


def write_video(
    path,
    *,
    seconds: float = 4.0,
    fps: int = 5,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    sample_rate: int = 44_100,
    tone_hz: float = 440.0,
    seed: int = 0,
) -> dict:
    """Writes an MPEG-4 video of smooth random colour fields (and a tone, in AAC) to `path`.

    Returns:
        {"frames": the RGB frames written (N, H, W, 3) uint8, "times": their times in seconds,
        "audio": the float32 mono waveform written (or None), "sample_rate": its rate}.
    """
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    n = int(round(seconds * fps))
    # Low-frequency content survives lossy coding well: blocky colour fields, upsampled.
    coarse = rng.integers(0, 256, size=(n, max(height // 8, 1), max(width // 8, 1), 3))
    frames = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :height, :width].astype(np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, fps)
        stream.bit_rate = 2_000_000
        waveform = None
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
            t = np.arange(int(seconds * sample_rate)) / sample_rate
            waveform = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio:
            chunk = 1024
            for start in range(0, len(waveform), chunk):
                part = waveform[None, start : start + chunk]
                frame = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return {
        "frames": frames,
        "times": np.arange(n) / fps,
        "audio": waveform,
        "sample_rate": sample_rate,
    }
