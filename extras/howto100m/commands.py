"""`y8m extras howto100m ...` subcommands (and `y8m bench howto100m` via `bench`).

Torch is imported inside the methods, so `captions` and `--help` work without it.
"""

from __future__ import annotations

import json
import os

from extras.howto100m.config import TrainConfig
from extras.runtime.flags import build, command, required
from y8m.errors import UsageError, integer, number
from y8m.fileio import atomic_open


def _require(**flags) -> None:
    missing = [name for name, value in flags.items() if not value]
    if missing:
        raise UsageError("missing " + ", ".join(f"--{m}" for m in missing))


def _pair_flags(min_time, max_words, word2vec_limit, batch_size, num_workers) -> tuple:
    """The data flags of embed and eval, checked (None keeps the checkpoint's value)."""
    return (
        None if min_time is None else number("min_time", min_time, 0),
        None if max_words is None else integer("max_words", max_words, 1),
        integer("word2vec_limit", word2vec_limit, 0),
        integer("batch_size", batch_size, 1),
        integer("num_workers", num_workers, 0),
    )


def _write_json(path: str, payload: dict) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)


class Commands:
    """HowTo100M text-video joint embedding: captions, train, embed, eval, localize, bench."""

    def captions(
        self,
        subtitles: str = "",
        output: str = "caption.json",
        recursive: bool = False,
        max_gap: float = 1.0,
        skip_bad: bool = False,
    ) -> dict:
        """Turns a folder of YouTube subtitle files (.vtt, .srt) into caption.json.

        Args:
            subtitles: folder of `<video_id>[.lang].vtt|.srt` files (manual or ASR).
            output: caption.json to write: {video_id: {"start", "end", "text"}}.
            recursive: also read sub-folders.
            max_gap: seconds between cues within which a repeated line is a rolling duplicate.
            skip_bad: skip malformed files (listed in the summary) instead of stopping.
        """
        from extras.howto100m.captions import save_captions
        from extras.howto100m.subtitles import build_caption_json, find_subtitle_files

        _require(subtitles=subtitles)
        max_gap = number("max_gap", max_gap, 0)
        files = find_subtitle_files(subtitles, recursive)
        captions, skipped = build_caption_json(files, max_gap=max_gap, skip_bad=skip_bad)
        if not captions:
            raise UsageError(f"no captions could be read from {subtitles!r}")
        save_captions(output, captions)
        num_pairs = sum(len(c["text"]) for c in captions.values())
        print(f"{len(captions)} videos, {num_pairs} clip-caption pairs -> {output}")
        for line in skipped:
            print(f"skipped {line}")
        return {
            "output": output,
            "videos": len(captions),
            "pairs": num_pairs,
            "skipped": len(skipped),
        }

    @command(TrainConfig)
    def train(self, **flags) -> dict:
        """Trains the joint embedding; re-running with the same --output_dir resumes.

        For several processes: `torchrun --nproc_per_node=N -m extras.howto100m.launch ...`.
        """
        _require(**{name: flags[name] for name in required(TrainConfig)})
        config = build(TrainConfig, flags)
        config.check()  # every numeric flag, before torch is imported
        from extras.howto100m.train import fit

        summary = fit(config)
        if int(os.environ.get("RANK", "0")) == 0:
            loss = "n/a" if summary["loss"] is None else f"{summary['loss']:.4f}"
            print(
                f"trained {summary['epochs_done']} epochs, loss {loss} -> {summary['checkpoint']}"
            )
        return {k: summary[k] for k in ("checkpoint", "epochs_done", "loss", "pairs_per_s")}

    def embed(
        self,
        checkpoint: str = "",
        captions: str = "",
        features_2d: str = "",
        word2vec: str = "",
        output: str = "embeddings.npz",
        features_3d: str = "",
        videos: str = "",
        min_time: float | None = None,
        max_words: int | None = None,
        word2vec_limit: int = 0,
        batch_size: int = 512,
        num_workers: int = 0,
        device: str = "auto",
    ) -> dict:
        """Embeds every clip-caption pair of a caption.json into an .npz file.

        Args:
            checkpoint: a ckpt-*.pt / reference .pth file or a training folder (newest checkpoint).
            captions: caption.json of the videos to embed.
            features_2d: folder of 2-D features.
            word2vec: word2vec file.
            output: .npz with text_embedding, video_embedding [N, E], video_id, start, end, text.
            features_3d: folder of 3-D features (as at training time).
            videos: file of video ids to embed (default: all).
            min_time: clip growth in seconds (default: the checkpoint's).
            max_words: words per caption (default: the checkpoint's).
            word2vec_limit: load only the first N words (0 = all).
            batch_size: pairs per forward pass.
            num_workers: data loader processes.
            device: auto, cpu, cuda or cuda:N.
        """
        from extras.howto100m.evaluate import DataSource, embed_to_file
        from extras.runtime.device import pick_device

        _require(
            checkpoint=checkpoint, captions=captions, features_2d=features_2d, word2vec=word2vec
        )
        min_time, max_words, word2vec_limit, batch_size, num_workers = _pair_flags(
            min_time, max_words, word2vec_limit, batch_size, num_workers
        )
        source = DataSource(
            captions,
            features_2d,
            word2vec,
            features_3d,
            videos,
            min_time,
            max_words,
            word2vec_limit,
        )
        count = embed_to_file(
            checkpoint, source, output, batch_size, pick_device(device), num_workers
        )
        print(f"{count} pairs embedded -> {output}")
        return {"output": output, "pairs": count}

    def eval(
        self,
        checkpoint: str = "",
        captions: str = "",
        features_2d: str = "",
        word2vec: str = "",
        features_3d: str = "",
        videos: str = "",
        embeddings: str = "",
        min_time: float | None = None,
        max_words: int | None = None,
        word2vec_limit: int = 0,
        batch_size: int = 512,
        chunk_size: int = 1024,
        num_workers: int = 0,
        device: str = "auto",
        output: str = "",
    ) -> dict:
        """Text-to-video and video-to-text retrieval R@1/5/10 and median rank over a test set.

        Args:
            checkpoint: a checkpoint file or training folder (not needed with --embeddings).
            captions: caption.json of the test pairs (every caption is one pair).
            features_2d: folder of 2-D features.
            word2vec: word2vec file.
            features_3d: folder of 3-D features (as at training time).
            videos: file of test video ids (default: all in --captions).
            embeddings: score an `embed` output instead of computing embeddings.
            min_time: clip growth in seconds (default: the checkpoint's; 0 keeps annotated clips).
            max_words: words per caption (default: the checkpoint's).
            word2vec_limit: load only the first N words (0 = all).
            batch_size: pairs per forward pass.
            chunk_size: similarity rows held at once (memory is chunk_size x N).
            num_workers: data loader processes.
            device: auto, cpu, cuda or cuda:N.
            output: also write the metrics to this JSON file.
        """
        from extras.howto100m.evaluate import (
            DataSource,
            evaluate_retrieval,
            retrieval_from_embeddings,
        )
        from extras.howto100m.retrieval import format_metrics
        from extras.runtime.device import pick_device

        min_time, max_words, word2vec_limit, batch_size, num_workers = _pair_flags(
            min_time, max_words, word2vec_limit, batch_size, num_workers
        )
        chunk_size = integer("chunk_size", chunk_size, 1)
        dev = pick_device(device)
        if embeddings:
            metrics = retrieval_from_embeddings(embeddings, chunk_size, dev)
        else:
            _require(
                checkpoint=checkpoint, captions=captions, features_2d=features_2d, word2vec=word2vec
            )
            source = DataSource(
                captions,
                features_2d,
                word2vec,
                features_3d,
                videos,
                min_time,
                max_words,
                word2vec_limit,
            )
            metrics = evaluate_retrieval(
                checkpoint, source, batch_size, chunk_size, dev, num_workers
            )
        print(f"{metrics['num_pairs']} pairs")
        print(format_metrics(metrics))
        if output:
            _write_json(output, metrics)
        return metrics

    def localize(
        self,
        checkpoint: str = "",
        tasks: str = "",
        videos: str = "",
        annotations: str = "",
        features_2d: str = "",
        word2vec: str = "",
        features_3d: str = "",
        window: float = 1.0,
        word2vec_limit: int = 0,
        device: str = "auto",
        output: str = "",
        alignment: str = "official",
    ) -> dict:
        """CrossTask step localisation: one second per step, in order; recall per task.

        Args:
            checkpoint: a checkpoint file or training folder.
            tasks: CrossTask task file (tasks_primary.txt: id, title, url, n_steps, steps).
            videos: CrossTask video list (videos_val.csv: task,video_id,url).
            annotations: folder of `<task>_<video_id>.csv` rows step,start,end.
            features_2d: folder of 2-D features of the CrossTask videos.
            word2vec: word2vec file.
            features_3d: folder of 3-D features (as at training time).
            window: seconds of video pooled around each second.
            word2vec_limit: load only the first N words (0 = all).
            device: auto, cpu, cuda or cuda:N.
            output: also write recalls and the chosen seconds per video to this JSON file.
            alignment: official (the CrossTask protocol: the dynamic program aligns the
                log-softmax over steps of each second's similarities) or raw (it aligns the
                similarities themselves).
        """
        from extras.howto100m.evaluate import evaluate_localization
        from extras.howto100m.localize import read_task_videos, read_tasks
        from extras.runtime.device import pick_device

        _require(
            checkpoint=checkpoint,
            tasks=tasks,
            videos=videos,
            annotations=annotations,
            features_2d=features_2d,
            word2vec=word2vec,
        )
        window = number("window", window, above=0)
        word2vec_limit = integer("word2vec_limit", word2vec_limit, 0)
        result = evaluate_localization(
            checkpoint,
            read_tasks(tasks),
            read_task_videos(videos),
            annotations,
            features_2d,
            word2vec,
            features_3d,
            window,
            word2vec_limit,
            pick_device(device),
            alignment=alignment,
        )
        for task, recall in sorted(result["tasks"].items()):
            print(f"task {task}: recall {100 * recall:.1f}")
        print(
            f"average recall {100 * result['recall']:.1f} over {result['num_videos']} videos "
            f"({alignment} alignment)"
        )
        if output:
            _write_json(output, result)
        return {k: result[k] for k in ("recall", "tasks", "num_videos", "skipped", "alignment")}

    def bench(
        self,
        embd_dim: int = 4096,
        video_dim: int = 4096,
        videos_per_batch: int = 32,
        pairs_per_video: int = 64,
        steps: int = 5,
        warmup: int = 1,
        eval_size: int = 10_000,
        device: str = "auto",
        mean_words: float = 4.0,
        max_words: int = 20,
        captions_per_video: int = 112,
        packed: bool = True,
    ) -> None:
        """Benchmarks the training step against a plain dense one, embedding throughput and
        a full ranking's time.

        Args:
            embd_dim: joint embedding size (thesis: 4096).
            video_dim: clip feature size (thesis: 4096).
            videos_per_batch: v (thesis: 32).
            pairs_per_video: k (thesis: 64).
            steps: timed rounds; each times the plain step (every word slot projected), the
                training step told nothing of repeated pairs (real words only) and the
                training step itself (each distinct pair embedded once) on the same batch;
                medians are reported.
            warmup: untimed rounds first.
            eval_size: N for the N x N ranking (both directions).
            device: auto, cpu, cuda or cuda:N.
            mean_words: average real words per random caption (thesis: about 4).
            max_words: word slots per caption (training default: 20).
            captions_per_video: pairs each video has, of which k are drawn with replacement
                as training draws them (HowTo100M has 112 on average); 0 makes every pair
                distinct.
            packed: also time the training step without repeat detection.
        """
        from extras.howto100m.bench import print_report, run_bench

        embd_dim, video_dim = integer("embd_dim", embd_dim, 1), integer("video_dim", video_dim, 1)
        videos_per_batch = integer("videos_per_batch", videos_per_batch, 1)
        pairs_per_video = integer("pairs_per_video", pairs_per_video, 1)
        steps, warmup = integer("steps", steps, 1), integer("warmup", warmup, 0)
        eval_size = integer("eval_size", eval_size, 1)
        max_words = integer("max_words", max_words, 1)
        mean_words = number("mean_words", mean_words, 0)
        captions_per_video = integer("captions_per_video", captions_per_video, 0)
        print_report(
            run_bench(
                embd_dim=embd_dim,
                video_dim=video_dim,
                videos_per_batch=videos_per_batch,
                pairs_per_video=pairs_per_video,
                steps=steps,
                warmup=warmup,
                eval_size=eval_size,
                device=device,
                mean_words=mean_words,
                max_words=max_words,
                captions_per_video=captions_per_video,
                packed=bool(packed),
            )
        )
