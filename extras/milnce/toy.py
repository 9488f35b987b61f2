"""A tiny generated narrated-video set (solid colours named in the captions) for smoke runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from extras.milnce.text import build_dictionary, save_dictionary
from extras.milnce.video import write_test_video

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "cyan": (30, 210, 210),
    "magenta": (210, 30, 200),
    "white": (240, 240, 240),
    "black": (15, 15, 15),
    "orange": (240, 140, 20),
    "purple": (120, 40, 160),
    "gray": (128, 128, 128),
    "brown": (120, 70, 30),
}


def make_toy_dataset(
    output_dir: str,
    num_videos: int = 8,
    num_colours: int | None = None,
    seconds: float = 3.0,
    fps: int = 10,
    height: int = 72,
    width: int = 96,
    seed: int = 0,
) -> dict:
    """Writes videos whose colour is named by their narration.

    Solid colours with mild noise are an easy pairing: a model trained on 8-frame 64 px clips
    with lr 1e-4 brings the loss down within a few steps. (Below ~64 px the last S3D blocks
    see 1x1 maps and BatchNorm over 4 values per channel makes training erratic.)

    Args:
        output_dir: where to write (created).
        num_videos: videos to write.
        num_colours: distinct colours (default one per video, at most 12); repeated colours
            give the labels.csv test videos.
        seconds, fps, height, width: video length, rate and frame size (even sizes).
        seed: noise seed.

    Layout under `output_dir`:
        videos/<id>.mp4       solid colour with mild noise
        captions/<id>.csv     start,end,text: 4 captions, each naming the colour
        caption.json          the same captions as one dict
        clips.csv             video_id,start,end,text: one evaluation clip per video
        labels.csv            video_id,label,split1: colour label; a colour's first video is
                              train (1), its later ones test (2)
        dict.npy              dictionary of the captions

    Returns:
        The paths, keyed by the names above (without extensions).
    """
    num_colours = min(num_colours or num_videos, len(COLOURS))
    rng = np.random.default_rng(seed)
    video_dir = os.path.join(output_dir, "videos")
    caption_dir = os.path.join(output_dir, "captions")
    os.makedirs(video_dir, exist_ok=True)
    os.makedirs(caption_dir, exist_ok=True)
    names = list(COLOURS)[:num_colours]
    num_frames = int(round(seconds * fps))
    captions_json, clips, labels = {}, [], []
    for i in range(num_videos):
        colour = names[i % len(names)]
        vid = f"toy{i:03d}"
        frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        frames[:] = COLOURS[colour]
        noise = rng.integers(-6, 7, size=frames.shape)
        frames = np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        write_test_video(os.path.join(video_dir, f"{vid}.mp4"), frames, fps=fps)
        step = seconds / 4
        table = pd.DataFrame(
            {
                "start": [k * step for k in range(4)],
                "end": [(k + 1) * step for k in range(4)],
                "text": [colour, f"the {colour} one", f"{colour} again", f"so {colour}"],
            }
        )
        table.to_csv(os.path.join(caption_dir, f"{vid}.csv"), index=False)
        captions_json[vid] = {k: table[k].tolist() for k in ("start", "end", "text")}
        clips.append({"video_id": vid, "start": 0.0, "end": seconds, "text": f"the {colour} video"})
        labels.append({"video_id": vid, "label": colour, "split1": 1 if i < num_colours else 2})
    paths = {
        "videos": video_dir,
        "captions": caption_dir,
        "caption": os.path.join(output_dir, "caption.json"),
        "clips": os.path.join(output_dir, "clips.csv"),
        "labels": os.path.join(output_dir, "labels.csv"),
        "dict": os.path.join(output_dir, "dict.npy"),
    }
    with open(paths["caption"], "w", encoding="utf-8") as f:
        json.dump(captions_json, f)
    pd.DataFrame(clips).to_csv(paths["clips"], index=False)
    pd.DataFrame(labels).to_csv(paths["labels"], index=False)
    corpus = [t for d in captions_json.values() for t in d["text"]] + [c["text"] for c in clips]
    save_dictionary(build_dictionary(corpus), paths["dict"])
    return paths
