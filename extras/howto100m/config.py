"""The settings of a HowTo100M training run; each flag is written once (name, default, help).

`y8m extras howto100m train` and its `--help` are derived from these fields
(`extras.runtime.flags`); torch-free, so the command module reads them at import time.
"""

from __future__ import annotations

import dataclasses

from extras.howto100m.features import FPS_2D, FPS_3D
from extras.runtime.flags import flag
from y8m.errors import UsageError, choice, integer, number


@dataclasses.dataclass
class TrainConfig:
    """Every flag of a training run; written to `<output_dir>/config.json`.

    Defaults are the thesis' (5.4.1, 5.5.1): Adam 1e-4, margin 0.1, v=32 videos x k=64
    pairs, 4096-d embedding, p=0.5, 5 s clips, 20 words; epochs and decay from the README.
    """

    captions: str = flag(help="caption.json of the training videos.")
    features_2d: str = flag(help="folder of 2-D features `<video_id>.npy` [T, D2] at 1 per second.")
    word2vec: str = flag(
        help="word2vec file (binary .bin or text), e.g. GoogleNews-vectors-negative300.bin."
    )
    output_dir: str = flag(help="folder for checkpoints ckpt-*.pt, config.json and history.json.")
    features_3d: str = flag("", "folder of 3-D features [T, D3] at 1.5 per second (optional).")
    videos: str = flag("", "file of training video ids (default: all with captions and features).")
    epochs: int = flag(15, "number of passes over the videos.")
    videos_per_batch: int = flag(32, "v, videos per batch (per process under torchrun).")
    pairs_per_video: int = flag(64, "k, clip-caption pairs drawn from each video.")
    embd_dim: int = flag(4096, "joint embedding size (stored in every checkpoint).")
    lr: float = flag(1e-4, "Adam learning rate.")
    lr_decay: float = flag(0.9, "learning rate factor applied after each epoch.")
    margin: float = flag(0.1, "ranking margin delta.")
    negative_weighting: bool = flag(True, "fix the intra/inter-video negative ratio (eq. 5.5).")
    hard_negative_rate: float = flag(0.5, "p, the share of weight on same-video negatives.")
    loss_weighting: str = flag(
        "thesis",
        "thesis (eq. 5.5 weights, mean over the negatives' weight) or reference (the reference "
        "code's mask and its mean over all pairs, to reproduce its logs).",
    )
    min_time: float = flag(
        5.0, "grow each caption over its neighbours to at least this many seconds."
    )
    min_words: int = flag(0, "and to at least this many kept words.")
    max_words: int = flag(20, "words per caption kept.")
    mask_padding: bool = flag(False, "ignore padded word slots in the sentence max-pool.")
    word2vec_limit: int = flag(0, "load only the first N words of the word2vec file (0 = all).")
    num_workers: int = flag(4, "data loader processes.")
    seed: int = flag(1, "random seed.")
    device: str = flag("auto", "auto, cpu, cuda or cuda:N.")
    checkpoint_every: int = flag(0, "also save every N steps (0 = at the end of each epoch only).")
    keep_checkpoints: int = flag(3, "newest checkpoints kept (0 = all).")
    # Library-only settings, not flags of the command (whose flag set, and so fire's one-letter
    # aliases -p and -s, stay as they were).
    sentence_dim: int = -1  # size of the pooled sentence feature (<= 0: embd_dim)
    remove_stop_words: bool = True  # drop stop-words from captions before the look-up
    fps_2d: float = FPS_2D  # rows per second of the 2-D features
    fps_3d: float = FPS_3D  # rows per second of the 3-D features
    progress: bool = True  # show a progress bar

    def check(self) -> None:
        """Raises UsageError for values no run can use (each numeric flag converted in place)."""
        positive = ("epochs", "videos_per_batch", "pairs_per_video", "embd_dim", "max_words")
        for name in positive:
            setattr(self, name, integer(name, getattr(self, name), 1))
        for name in ("min_words", "word2vec_limit", "num_workers", "checkpoint_every"):
            setattr(self, name, integer(name, getattr(self, name), 0))
        self.keep_checkpoints = integer("keep_checkpoints", self.keep_checkpoints, 0)
        self.seed = integer("seed", self.seed)
        self.lr = number("lr", self.lr, above=0)
        self.lr_decay = number("lr_decay", self.lr_decay, maximum=1, above=0)
        self.margin = number("margin", self.margin, 0)
        self.min_time = number("min_time", self.min_time, 0)
        self.hard_negative_rate = number("hard_negative_rate", self.hard_negative_rate, 0)
        if not self.hard_negative_rate < 1:
            raise UsageError(
                f"--hard_negative_rate must be in [0, 1), got {self.hard_negative_rate}"
            )
        choice("loss_weighting", self.loss_weighting, ("thesis", "reference"))
        if self.loss_weighting == "reference" and self.negative_weighting:
            if self.videos_per_batch < 2 and self.pairs_per_video > 1:
                raise UsageError("--loss_weighting=reference needs --videos_per_batch >= 2")
        if not self.output_dir:
            raise UsageError("--output_dir is required")
