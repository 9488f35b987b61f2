"""The settings of a MIL-NCE run: the training flags and the S3D constructor arguments.

Each flag (name, default, help) is written here once; `y8m extras milnce train` and its
`--help` are derived from these fields (`extras.runtime.flags`). Torch-free, so the command
module can read them at import time.
"""

from __future__ import annotations

import dataclasses

from extras.runtime.flags import flag


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run besides the model; saved in config.json and in
    every checkpoint."""

    train_dir: str = flag(
        help="run directory; checkpoints epochNNNN.pth.tar, config.json, history.json. "
        "Re-running with the same directory resumes from its newest checkpoint."
    )
    videos: str = flag(
        help="glob of video files, or a CSV with a video_path column (see --video_root)."
    )
    captions: str = flag(
        help="directory of <video_id>.csv (start,end,text) or a caption.json file."
    )
    dictionary: str = flag(
        "", "words file (.npy) from `y8m extras milnce dictionary` (new runs only)."
    )
    video_root: str = flag("", "directory the video_path column of a --videos CSV is relative to.")
    epochs: int = flag(150, "passes over the videos (one random clip per video per epoch).")
    batch_size: int = flag(256, "global batch of clips, split evenly over processes.")
    lr: float = flag(1e-3, "Adam learning rate.")
    warmup_steps: int = flag(5000, "linear warm-up steps before the per-step cosine decay.")
    loss: str = flag(
        "released",
        "MIL-NCE form: released (positives in row and column, floor log 2) or paper (eq. 6.1).",
    )
    num_candidates: int = flag(4, "K captions nearest in time used as positive candidates.")
    num_frames: int = flag(16, "frames per clip.")
    fps: float = flag(5.0, "frames per second sampled from the video.")
    video_size: int = flag(224, "side of the square crop in pixels.")
    min_time: float = flag(
        5.0, "captions shorter than this (seconds) are widened before drawing the clip."
    )
    max_words: int = flag(20, "words kept per caption.")
    lowercase: bool = flag(False, "lower-case captions before looking words up.")
    crop: str = flag(
        "random",
        "random (native size, random square) or center (short side scaled, centre square).",
    )
    flip: bool = flag(True, "random horizontal flips.")
    short_side: int = flag(
        0, "scale the short side to this many pixels before a random crop (0 = native)."
    )
    word_vectors: str = flag(
        "", "word2vec file (.bin, text, gensim .kv or aligned .pth) to initialise words."
    )
    freeze_word_embedding: bool = flag(True, "keep word vectors from --word_vectors fixed.")
    num_workers: int = flag(4, "decoding processes per training process.")
    seed: int = flag(1, "random seed (sampling depends only on seed, epoch and video index).")
    checkpoint_every: int = flag(1, "save every this many epochs (and always after the last).")
    keep_checkpoints: int = flag(10, "newest checkpoints kept.")
    precise_bn_batches: int = flag(
        200,
        "before each checkpoint, set BatchNorm statistics to exact averages over this many "
        "training batches (PreciseBN; fewer if an epoch has fewer); 0 keeps the running averages.",
    )
    device: str = flag("auto", "auto, cpu, cuda or cuda:N.")
    bf16: bool = flag(
        False,
        "bfloat16 autocast for the network's forward, on a CPU with AVX-512 BF16 or AMX or a "
        "GPU with bfloat16; about 2x the float32 step on such a CPU. Weights, Adam and the loss "
        "stay float32.",
    )
    progress: bool = flag(True, "show a progress bar.")


@dataclasses.dataclass
class ModelConfig:
    """Keyword arguments of `S3D`; stored in every checkpoint so it rebuilds the network.

    The fields made with `flag` are also `train` flags; the others are fixed (num_embeddings
    follows the dictionary).
    """

    space_to_depth: bool = flag(
        False, "use the released space-to-depth first layer instead of the 3x7x7 conv."
    )
    embedding_dim: int = 512
    num_embeddings: int = 66250
    word_embedding_dim: int = 300
    text_hidden_dim: int = 2048
    use_gating: bool = True
    mask_padding: bool = flag(False, "leave padding tokens out of the sentence max-pool.")
    weight_init: str = flag("default", "default (PyTorch) or kaiming_normal.")
