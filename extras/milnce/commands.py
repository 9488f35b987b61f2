"""`y8m extras milnce ...` subcommands (and `y8m bench milnce`); torch is imported on use."""

from __future__ import annotations

import json
import os

from extras.milnce.config import ModelConfig, TrainConfig
from extras.runtime.flags import build, command
from y8m.errors import UsageError, choice, integer, number


def _integers(values: dict, **minimums: int | None) -> dict:
    """VALUES with each named flag checked as an integer >= its minimum (None: any)."""
    return {**values, **{k: integer(k, values[k], lo) for k, lo in minimums.items()}}


def _positive_numbers(values: dict, *names: str) -> dict:
    """VALUES with each named flag checked as a finite number > 0."""
    return {**values, **{k: number(k, values[k], above=0) for k in names}}


def _check_batch_size(value) -> int:
    size = integer("batch_size", value, 1)
    if size < 2:
        raise UsageError(
            "--batch_size must be at least 2: MIL-NCE contrasts each clip with the other clips "
            "of the batch, so with 1 the loss is a constant (no negatives) and nothing is learnt"
        )
    return size


def _check_clip_flags(values: dict, fps_minimum_zero: bool = False) -> dict:
    """The window flags shared by embed, eval and probe."""
    values = _integers(
        values,
        num_windows=1,
        num_frames=1,
        video_size=1,
        max_words=1,
        batch_size=1,
        num_workers=0,
        precise_bn_batches=0,
    )
    if fps_minimum_zero:
        values["fps"] = number("fps", values["fps"], 0)
    else:
        values["fps"] = number("fps", values["fps"], above=0)
    return values


def _write_json(path: str, result: dict) -> None:
    from y8m.fileio import atomic_open

    with atomic_open(path) as f:
        json.dump(result, f, indent=2)


class Commands:
    """MIL-NCE: train S3D + sentence encoder on narrated clips, embed, evaluate, probe."""

    @command(TrainConfig, ModelConfig)
    def train(self, **flags) -> dict:
        """Trains S3D and the sentence encoder with MIL-NCE on narrated videos (resumes if possible).

        Run under `torchrun --nproc_per_node=N -m extras.milnce.launch ...` for several processes.
        """
        if not flags["train_dir"] or not flags["videos"] or not flags["captions"]:
            raise UsageError("--train_dir, --videos and --captions are required")
        choice("loss", flags["loss"], ("released", "paper"))
        choice("crop", flags["crop"], ("random", "center"))
        choice("weight_init", flags["weight_init"], ("default", "kaiming_normal"))
        flags = _integers(
            flags,
            epochs=1,
            warmup_steps=0,
            num_candidates=1,
            num_frames=1,
            video_size=1,
            max_words=1,
            short_side=0,
            num_workers=0,
            seed=None,
            checkpoint_every=1,
            keep_checkpoints=0,
            precise_bn_batches=None,  # its range is checked, and worded, by the library
        )
        flags = _positive_numbers(flags, "lr", "fps")
        flags["min_time"] = number("min_time", flags["min_time"], 0)
        flags["batch_size"] = _check_batch_size(flags["batch_size"])
        from extras.milnce.train import train as run_training

        result = run_training(build(TrainConfig, flags), build(ModelConfig, flags))
        if result["world_size"] == 1 or int(os.environ.get("RANK", "0")) == 0:
            print(
                f"trained {result['epochs']} epochs ({result['steps']} steps): loss "
                f"{result['first_loss']:.4f} -> {result['last_loss']:.4f}; "
                f"skipped {result['skipped']}; checkpoint {result['checkpoint']}"
            )
        return result

    def embed(
        self,
        checkpoint: str = "",
        output: str = "",
        videos: str = "",
        sentences: str = "",
        dictionary: str = "",
        feature: str = "video_embedding",
        num_windows: int = 10,
        num_frames: int = 16,
        fps: float = 5.0,
        video_size: int = 224,
        max_words: int = 30,
        batch_size: int = 16,
        num_workers: int = 2,
        device: str = "auto",
        progress: bool = True,
        precise_bn_batches: int = 200,
    ) -> dict:
        """Embeds videos (mean over windows) or sentences into a .npy matrix.

        Args:
            checkpoint: checkpoint file, run directory (newest checkpoint) or released .pth.
            output: .npy to write [N, D]; row names go to the same path with .txt.
            videos: glob of videos; each is covered by --num_windows evenly spaced windows.
            sentences: text file with one sentence per line (instead of --videos).
            dictionary: words file; required for a released plain state_dict.
            feature: video_embedding (joint space, 512-d) or mixed_5c (1024-d trunk feature).
            num_windows: windows averaged per video.
            num_frames: frames per window.
            fps: frames per second sampled.
            video_size: centre crop side in pixels.
            max_words: words kept per sentence.
            batch_size: videos per batch.
            num_workers: decoding processes.
            device: auto, cpu or cuda.
            progress: show a progress bar.
            precise_bn_batches: for a checkpoint saved without re-estimated BatchNorm
                statistics, re-estimate them over this many batches of its training data
                first (0 = use the stored running averages).
        """
        if not checkpoint or not output:
            raise UsageError("--checkpoint and --output are required")
        if bool(videos) == bool(sentences):
            raise UsageError("pass exactly one of --videos (a glob) or --sentences (a text file)")
        if not output.endswith(".npy"):
            raise UsageError(f"--output must end in .npy, got {output!r}")
        choice("feature", feature, ("video_embedding", "mixed_5c"))
        checked = _check_clip_flags(locals())
        num_windows, num_frames, fps = (checked[k] for k in ("num_windows", "num_frames", "fps"))
        video_size, max_words, batch_size = (
            checked[k] for k in ("video_size", "max_words", "batch_size")
        )
        num_workers, precise_bn_batches = checked["num_workers"], checked["precise_bn_batches"]
        import numpy as np

        from extras.milnce.checkpoint import load_model
        from extras.milnce.data import ClipWindows
        from extras.milnce.inference import embed_sentences, extract_windows
        from extras.milnce.precise_bn import ensure_precise_bn
        from extras.runtime.device import pick_device
        from y8m.fileio import atomic_open, atomic_path, expand_pattern

        torch_device = pick_device(device)
        model, tokenizer, meta = load_model(
            checkpoint,
            dictionary or None,
            device=torch_device,
            require_dictionary=bool(sentences),
        )
        if sentences:
            if not os.path.isfile(sentences):
                raise UsageError(f"--sentences {sentences!r} not found")
            with open(sentences, encoding="utf-8") as f:
                names = [line.rstrip("\n") for line in f if line.strip()]
            matrix = embed_sentences(model, tokenizer, names, max_words=int(max_words))
            skipped: list[str] = []
        else:
            paths = expand_pattern(videos, "videos")
            ensure_precise_bn(
                model,
                meta,
                tokenizer,
                int(precise_bn_batches),
                torch_device,
                int(num_workers),
                progress,
            )
            dataset = ClipWindows(
                paths,
                num_windows=int(num_windows),
                num_frames=int(num_frames),
                fps=float(fps),
                size=int(video_size),
            )
            windows, ok = extract_windows(
                model, dataset, feature, int(batch_size), int(num_workers), progress
            )
            matrix = windows.mean(axis=1)[ok]
            names = [p for p, good in zip(paths, ok) if good]
            skipped = [p for p, good in zip(paths, ok) if not good]
        with atomic_path(output) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, matrix.astype(np.float32))
        index = output[: -len(".npy")] + ".txt"
        with atomic_open(index) as f:
            f.writelines(f"{name}\n" for name in names)
        print(f"wrote {matrix.shape[0]} x {matrix.shape[1]} to {output} (rows named in {index})")
        if skipped:
            print(f"skipped {len(skipped)} unreadable videos, e.g. {skipped[:3]}")
        return {
            "output": output,
            "index": index,
            "rows": int(matrix.shape[0]),
            "dim": int(matrix.shape[1]),
            "skipped": len(skipped),
        }

    def eval(
        self,
        checkpoint: str = "",
        clips: str = "",
        video_root: str = "",
        dictionary: str = "",
        output: str = "",
        num_windows: int = 10,
        num_frames: int = 16,
        fps: float = 5.0,
        video_size: int = 224,
        max_words: int = 30,
        batch_size: int = 16,
        num_workers: int = 2,
        device: str = "auto",
        progress: bool = True,
        precise_bn_batches: int = 200,
    ) -> dict:
        """Zero-shot text->video and video->text retrieval (R@1/5/10, median rank) over a clip set.

        Args:
            checkpoint: checkpoint file, run directory (newest checkpoint) or released .pth.
            clips: CSV with video_id (or video_path), start, end, text; one row per clip.
            video_root: where videos are found (<root>/**/<video_id>.<ext>, or video_path base).
            dictionary: words file; required for a released plain state_dict.
            output: optional JSON file for the metrics.
            num_windows: windows averaged per clip (10 in the YouCook2 protocol).
            num_frames: frames per window.
            fps: frames per second sampled.
            video_size: centre crop side in pixels.
            max_words: words kept per caption.
            batch_size: clips per batch.
            num_workers: decoding processes.
            device: auto, cpu or cuda.
            progress: show a progress bar.
            precise_bn_batches: for a checkpoint saved without re-estimated BatchNorm
                statistics, re-estimate them over this many batches of its training data
                first (0 = use the stored running averages).
        """
        if not checkpoint or not clips:
            raise UsageError("--checkpoint and --clips are required")
        checked = _check_clip_flags(locals())
        num_windows, num_frames, fps = (checked[k] for k in ("num_windows", "num_frames", "fps"))
        video_size, max_words, batch_size = (
            checked[k] for k in ("video_size", "max_words", "batch_size")
        )
        num_workers, precise_bn_batches = checked["num_workers"], checked["precise_bn_batches"]
        from extras.milnce.checkpoint import load_model
        from extras.milnce.data import read_clip_csv
        from extras.milnce.evaluate import evaluate_retrieval
        from extras.milnce.precise_bn import ensure_precise_bn
        from extras.runtime.device import pick_device

        table = read_clip_csv(clips, video_root)
        torch_device = pick_device(device)
        model, tokenizer, meta = load_model(checkpoint, dictionary or None, device=torch_device)
        ensure_precise_bn(
            model,
            meta,
            tokenizer,
            int(precise_bn_batches),
            torch_device,
            int(num_workers),
            progress,
        )
        result = evaluate_retrieval(
            model,
            tokenizer,
            table,
            num_windows=int(num_windows),
            num_frames=int(num_frames),
            fps=float(fps),
            size=int(video_size),
            max_words=int(max_words),
            batch_size=int(batch_size),
            num_workers=int(num_workers),
            progress=progress,
        )
        print(f"{'direction':<16}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'MedR':>8}{'clips':>8}")
        for direction in ("text_to_video", "video_to_text"):
            m = result[direction]
            print(
                f"{direction:<16}{m['r1']:>8.4f}{m['r5']:>8.4f}{m['r10']:>8.4f}"
                f"{m['median_rank']:>8.1f}{m['num_queries']:>8d}"
            )
        if result["skipped"]:
            print(
                f"skipped {result['skipped']} clips with unreadable videos, e.g. {result['skipped_paths'][:3]}"
            )
        if output:
            _write_json(output, result)
        return result

    def probe(
        self,
        checkpoint: str = "",
        labels: str = "",
        video_root: str = "",
        splits: str = "",
        num_windows: int = 10,
        num_frames: int = 16,
        fps: float = 0.0,
        video_size: int = 224,
        C: float = 100.0,
        output: str = "",
        batch_size: int = 8,
        num_workers: int = 2,
        device: str = "auto",
        progress: bool = True,
        precise_bn_batches: int = 200,
    ) -> dict:
        """Linear-probe action recognition: linear SVM on frozen mixed_5c features, top-1 per split.

        Args:
            checkpoint: checkpoint file, run directory (newest checkpoint) or released .pth.
            labels: CSV with video_id (or video_path), label and split columns (1 train, 2 test, 0 unused).
            video_root: where videos are found (<root>/**/<video_id>.<ext>, or video_path base).
            splits: comma-separated split columns to use (default: every column named split*).
            num_windows: windows per video, evenly spaced over the whole video.
            num_frames: frames per window.
            fps: frames per second sampled; 0 = the video's own rate (released protocol).
            video_size: centre crop side in pixels.
            C: SVM regularisation constant.
            output: optional JSON file for the accuracies.
            batch_size: videos per batch.
            num_workers: decoding processes.
            device: auto, cpu or cuda.
            progress: show a progress bar.
            precise_bn_batches: for a checkpoint saved without re-estimated BatchNorm
                statistics, re-estimate them over this many batches of its training data
                first (0 = use the stored running averages).
        """
        if not checkpoint or not labels:
            raise UsageError("--checkpoint and --labels are required")
        checked = _check_clip_flags({**locals(), "max_words": 1}, fps_minimum_zero=True)
        num_windows, num_frames, fps = (checked[k] for k in ("num_windows", "num_frames", "fps"))
        video_size, batch_size = checked["video_size"], checked["batch_size"]
        num_workers, precise_bn_batches = checked["num_workers"], checked["precise_bn_batches"]
        C = number("C", C, above=0)
        import numpy as np

        from extras.milnce.checkpoint import load_model
        from extras.milnce.data import ClipWindows
        from extras.milnce.inference import extract_windows
        from extras.milnce.precise_bn import ensure_precise_bn
        from extras.milnce.probe import probe_split, read_label_csv
        from extras.runtime.device import pick_device

        table, split_names = read_label_csv(labels, video_root)
        if splits:
            wanted = [s.strip() for s in str(splits).split(",") if s.strip()]
            unknown = sorted(set(wanted) - set(split_names))
            if unknown:
                raise UsageError(f"--splits {unknown} not in {labels!r} (has {split_names})")
            split_names = wanted
        torch_device = pick_device(device)
        model, tokenizer, meta = load_model(
            checkpoint, device=torch_device, require_dictionary=False
        )
        ensure_precise_bn(
            model,
            meta,
            tokenizer,
            int(precise_bn_batches),
            torch_device,
            int(num_workers),
            progress,
        )
        dataset = ClipWindows(
            table["path"].tolist(),
            num_windows=int(num_windows),
            num_frames=int(num_frames),
            fps=float(fps) or None,
            size=int(video_size),
        )
        features, ok = extract_windows(
            model, dataset, "mixed_5c", int(batch_size), int(num_workers), progress
        )
        classes = sorted(set(table["label"]))
        label_ids = np.array([classes.index(label) for label in table["label"]])
        result: dict = {"splits": {}, "skipped": int((~ok).sum()), "num_classes": len(classes)}
        for name in split_names:
            split = np.where(ok, table[name].to_numpy(), 0)
            result["splits"][name] = probe_split(features, label_ids, split, C=float(C))
        result["mean_top1"] = float(np.mean([r["top1"] for r in result["splits"].values()]))
        print(f"{'split':<10}{'top-1':>8}{'train':>8}{'test':>8}")
        for name, r in result["splits"].items():
            print(f"{name:<10}{r['top1']:>8.4f}{r['num_train']:>8d}{r['num_test']:>8d}")
        print(f"{'mean':<10}{result['mean_top1']:>8.4f}")
        if result["skipped"]:
            print(f"skipped {result['skipped']} unreadable videos")
        if output:
            _write_json(output, result)
        return result

    def dictionary(
        self,
        captions: str = "",
        output: str = "",
        min_count: int = 1,
        max_size: int = 66249,
        lowercase: bool = False,
    ) -> dict:
        """Builds a word dictionary (.npy, id = index + 1) from caption files.

        Args:
            captions: directory of <video_id>.csv (start,end,text) or a caption.json file.
            output: .npy file to write.
            min_count: keep words seen at least this often.
            max_size: keep the most frequent words up to this many (66249 fits the released table).
            lowercase: lower-case captions first (train with the same --lowercase).
        """
        if not captions or not output:
            raise UsageError("--captions and --output are required")
        min_count, max_size = integer("min_count", min_count, 1), integer("max_size", max_size, 1)
        from extras.milnce.captions import CaptionStore
        from extras.milnce.text import build_dictionary, save_dictionary

        words = build_dictionary(
            CaptionStore(captions).all_text(), int(min_count), int(max_size), bool(lowercase)
        )
        if not words:
            raise UsageError(f"no words found in {captions!r}")
        save_dictionary(words, output)
        print(f"wrote {len(words)} words to {output}")
        return {"output": output, "words": len(words)}

    def toy(self, output_dir: str = "", num_videos: int = 8, num_colours: int = 0) -> dict:
        """Writes a tiny generated narrated-video set (colours named in captions) for trying things out.

        Args:
            output_dir: directory to create (videos/, captions/, caption.json, clips.csv, labels.csv, dict.npy).
            num_videos: number of videos.
            num_colours: distinct colours (0 = one per video, at most 12); repeats make probe test videos.
        """
        if not output_dir:
            raise UsageError("--output_dir is required")
        num_videos = integer("num_videos", num_videos, 1)
        num_colours = integer("num_colours", num_colours, 0)
        from extras.milnce.toy import make_toy_dataset

        paths = make_toy_dataset(output_dir, int(num_videos), int(num_colours) or None)
        print(f"wrote {num_videos} videos and their captions under {output_dir}")
        return paths

    def bench(
        self,
        batch_size: int = 4,
        num_frames: int = 16,
        video_size: int = 224,
        steps: int = 1,
        rounds: int = 5,
        space_to_depth: bool = False,
        device: str = "auto",
        num_videos: int = 16,
        num_workers: int = 2,
        loader_batches: int = 8,
        threads: int = 0,
        precise_bn_batches: int = 5,
        bf16: str = "auto",
        compile: bool = False,
    ) -> None:
        """Benchmarks MIL-NCE training: the S3D step against the plain step in the same process
        (alternating rounds), BatchNorm re-estimation, loader clips/s.

        Prints a table, then one JSON line (train_clips_per_s, speedup_vs_plain,
        bf16_speedup_vs_plain, precise_bn_s_per_200_batches, loader_clips_per_s, device_name,
        device_memory_gb, ...).

        Args:
            batch_size: clips per step and per loader batch.
            num_frames: frames per clip.
            video_size: clip side in pixels.
            steps: timed training steps of each variant per round (median per round).
            rounds: alternating rounds of all variants (plain, plain with kept memory, y8m,
                bf16, compiled); ratios are medians of the per-round ratios.
            space_to_depth: time the released space-to-depth variant.
            device: auto, cpu or cuda.
            num_videos: generated mp4s (256x320, 8 s, 25 fps) for the loader.
            num_workers: loader decoding processes.
            loader_batches: timed loader batches.
            threads: torch CPU threads (0 = torch's default).
            precise_bn_batches: batches of BatchNorm re-estimation timed (the figure is
                seconds per 200 batches; 0 skips it).
            bf16: auto (time bfloat16 autocast where the device has it), on or off.
            compile: also time torch.compile of the step (minutes of compilation on a CPU).
        """
        checked = _integers(
            locals(),
            batch_size=1,
            num_frames=1,
            video_size=1,
            steps=1,
            rounds=1,
            num_videos=1,
            loader_batches=0,
            num_workers=0,
            threads=0,
            precise_bn_batches=0,
        )
        batch_size, num_frames, video_size = (
            checked[k] for k in ("batch_size", "num_frames", "video_size")
        )
        steps, num_videos, loader_batches = (
            checked[k] for k in ("steps", "num_videos", "loader_batches")
        )
        rounds, num_workers = checked["rounds"], checked["num_workers"]
        threads, precise_bn_batches = checked["threads"], checked["precise_bn_batches"]
        if num_videos < batch_size:
            raise UsageError(f"--num_videos ({num_videos}) must be >= --batch_size ({batch_size})")
        from extras.milnce.bench import run_bench

        run_bench(
            batch_size=int(batch_size),
            num_frames=int(num_frames),
            size=int(video_size),
            steps=int(steps),
            rounds=int(rounds),
            space_to_depth=bool(space_to_depth),
            device=device,
            num_videos=int(num_videos),
            num_workers=int(num_workers),
            loader_batches=int(loader_batches),
            threads=int(threads),
            precise_bn_batches=int(precise_bn_batches),
            bf16=str(bf16),
            compile=bool(compile),
        )
