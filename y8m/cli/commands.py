"""Command functions behind `y8m`: each parses its flags, calls the library and prints a summary.

Heavy modules (TensorFlow, Keras, torch) are imported inside the functions so `y8m --help`
and the torch-free parts start fast.
"""

from __future__ import annotations

import functools
import inspect
import json

from y8m.cli.bench.ensemble import bench_ensemble
from y8m.cli.bench.extract import bench_extract
from y8m.cli.bench.learn import bench_learn
from y8m.cli.bench.metrics import bench_metrics
from y8m.cli.bench.pack import bench_pack
from y8m.cli.bench.predict import bench_predict
from y8m.cli.bench.reader import bench_reader
from y8m.cli.bench.report import bench_report
from y8m.cli.bench.train import bench_train
from y8m.errors import UsageError


def _returns_none(fn):
    """Keeps a library function's signature and docstring for fire, but not its return value
    (fire would print it after the command's own summary)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        fn(*args, **kwargs)

    return call


def _print_json(figures: dict) -> None:
    print(json.dumps(figures, default=str))


def synth(
    output_dir: str = "data/synth",
    version: int = 2018,
    videos: int = 1200,
    validate_videos: int | None = None,
    test_videos: int | None = None,
    shards: int = 4,
    level: str = "both",
    min_frames: int = 20,
    max_frames: int = 60,
    active_classes: int = 40,
    verticals: int = 8,
    mean_labels: float = 2.0,
    seed: int = 0,
    num_classes: int | None = None,
):
    """Write a learnable synthetic dataset in the official YouTube-8M layout.

    Args:
        output_dir: destination; shards go to OUTPUT_DIR/frame and OUTPUT_DIR/video.
        version: release layout: 2017 (4716 classes, video_id), 2018 (3862, id) or 2019 (segments).
        videos: training videos (validate and test default to a quarter each).
        validate_videos: validation videos.
        test_videos: test videos.
        shards: files for the train split (validate/test get half).
        level: frame, video or both.
        min_frames: shortest video in frames (seconds).
        max_frames: longest video in frames (at most 300).
        active_classes: classes that occur (long-tailed).
        verticals: groups of co-occurring classes.
        mean_labels: average labels per video.
        seed: random seed; the output is a deterministic function of it.
        num_classes: vocabulary size (the release's by default; smaller for quick experiments).
    """
    from y8m.data.synth import synthesize

    summary = synthesize(
        output_dir,
        version=version,
        videos=videos,
        validate_videos=validate_videos,
        test_videos=test_videos,
        shards=shards,
        level=level,
        min_frames=min_frames,
        max_frames=max_frames,
        active_classes=active_classes,
        verticals=verticals,
        mean_labels=mean_labels,
        seed=seed,
        num_classes=num_classes,
    )
    for split, files in summary["files"].items():
        for lv, paths in files.items():
            print(f"{split:<9} {lv:<6} {len(paths)} file(s), {summary['videos'][split]} videos")
    print(
        f"wrote {output_dir} (version {summary['version']}, {summary['active_classes']} active classes)"
    )


def inspect_(
    pattern: str, version: int | None = None, max_problems: int = 20, json_output: bool = False
):
    """Count, summarise and validate every record of a TFRecord glob against the official spec.

    Args:
        pattern: TFRecord glob, e.g. 'data/synth/frame/validate*.tfrecord'.
        version: release to validate against (2017, 2018, 2019); detected when omitted.
        max_problems: problems printed in full.
        json_output: print the whole report as JSON.
    """
    from y8m.data.inspect import inspect_records

    report = inspect_records(pattern, version=version, max_problems=max_problems)
    if json_output:
        _print_json(report)
    else:
        level = "frame-level" if report["frame_level"] else "video-level"
        print(
            f"{report['videos']} videos in {len(report['files'])} file(s), {level}, version {report['version']}"
        )
        for path, n in report["files"].items():
            print(f"  {n:>8}  {path}")
        nf = report["num_frames"]
        if nf["min"] is not None:
            print(f"frames per video: min {nf['min']}, mean {nf['mean']:.1f}, max {nf['max']}")
        print(f"features (values per frame/video): {report['feature_shapes']}")
        print(
            f"labels per video: {report['labels_per_video']:.2f}; distinct labels: {report['distinct_labels']}"
        )
        print(
            "top labels (class: videos): " + ", ".join(f"{c}: {n}" for c, n in report["top_labels"])
        )
        if report.get("unlabelled_videos"):
            print(
                f"videos without labels (valid, as in test shards): {report['unlabelled_videos']}"
            )
        if report.get("problem_counts"):
            print(
                "problems by kind: "
                + ", ".join(f"{k}: {n}" for k, n in sorted(report["problem_counts"].items()))
            )
        for p in report["problems"]:
            print(f"problem: {p}")
    if not report["valid"]:
        raise UsageError(
            f"{report['num_problems']} problem(s) found; the first: {report['problems'][0]}"
        )
    if not json_output:
        print("all records valid")


def models(num_classes: int = 3862, names: str | None = None):
    """List the model names with parameter counts and float32 size for NUM_CLASSES.

    Args:
        num_classes: output classes (3862 for 2018, 4716 for 2017; the thesis counts at 4716).
        names: comma-separated subset of models to list.
    """
    from frame_models.summary import parameter_table
    from y8m.data import specs

    if isinstance(names, (list, tuple)):  # fire turns `--names=a,b` into a tuple
        names = ",".join(str(n) for n in names)
    wanted = None if names is None else [n.strip() for n in str(names).split(",") if n.strip()]
    try:
        rows = parameter_table(
            int(num_classes),
            [(f.name, f.size) for f in specs.FRAME_FEATURES],
            [(f.name, f.size) for f in specs.VIDEO_FEATURES],
            names=wanted,
        )
    except ValueError as err:  # frame_models' errors are the user's: an unknown name, ...
        raise UsageError(str(err)) from None
    print(
        f"{'model':<16} {'parameters':>14} {'trainable':>14} {'float32 MB':>11} "
        f"{'thesis':>8} {'reference':>10}"
    )
    for r in rows:
        thesis = f"~{r['thesis_params'] / 1e6:.0f}M" if r.get("thesis_params") else "-"
        published = r.get("reference_params") if int(num_classes) == 3862 else None
        reference = f"~{published / 1e6:.1f}M" if published else "-"
        print(
            f"{r['name']:<16} {r['params']:>14,} {r['trainable_params']:>14,} "
            f"{r['float32_mb']:>11.1f} {thesis:>8} {reference:>10}"
        )
    print(
        "thesis: figures quoted at 4716 classes (2017); reference: NeXtVLAD's trainable "
        "parameters at 3862 classes (winners_facts.md 1.4)"
    )


def demo(output_dir: str = "demo", videos: int = 1500, steps: int = 300, seed: int = 0):
    """The whole Kaggle workflow on synthetic data: synth, train 3 models, eval, predict, ensemble.

    Args:
        output_dir: where data, runs, predictions and the submission go.
        videos: synthetic training videos.
        steps: training steps per model.
        seed: random seed.
    """
    from y8m.cli.demo import run_demo

    run_demo(output_dir=output_dir, videos=videos, steps=steps, seed=seed)


def split(data_pattern: str, folds: int = 5, output_dir: str = "data/folds", seed: int = 0):
    """Write stratified folds of the rated videos of 2019 records, copying them byte for byte.

    Args:
        data_pattern: 2019 records with segment ratings, e.g. 'data/frame/validate*.tfrecord'.
        folds: number of folds (2 to the number of rated videos).
        output_dir: gets OUTPUT_DIR/fold{k}/{train,validate}*.tfrecord and OUTPUT_DIR/folds.json.
        seed: random seed; the assignment is a deterministic function of it.
    """
    from y8m.data.folds import split_folds

    summary = split_folds(data_pattern, folds=folds, output_dir=output_dir, seed=seed)
    print(f"{'fold':>4} {'videos':>8} {'rated segments':>15}")
    for k, (n, segs) in enumerate(zip(summary["videos"], summary["segments"])):
        print(f"{k:>4} {n:>8} {segs:>15}")
    print(f"wrote {summary['folds']} folds to {output_dir} (folds.json: fold of each video)")


def _quiet(cls):
    """A subclass whose public methods return None, so fire prints only what they print."""
    members = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_"):
            continue
        members[name] = _returns_none(fn)
    return type(cls.__name__, (cls,), members)


class Submission:
    """Kaggle submission files: validate and score."""

    def validate(self, file: str | None = None, version: int = 2018, ids_from: str | None = None):
        """Check a submission CSV: header, rows, unique ids (== the test set's with --ids_from), ranges.

        Args:
            file: the submission (.csv or .csv.gz).
            version: 2017, 2018 (video labels) or 2019 (segments).
            ids_from: TFRecord glob or CSV of the ids the submission must cover exactly.
        """
        from submissions.commands import Commands, check_file, check_version

        file, version = check_file(file), check_version(version)  # before any reading
        Commands().validate(file, version=version, ids_from=self._read_ids(ids_from, version))

    def score(self, file: str | None = None, solution: str | None = None, version: int = 2018):
        """Score a submission as the leaderboard does (GAP@20; segment mAP for 2019).

        The file is validated first (as `validate` does): an invalid file is not scored.

        Args:
            file: the submission (.csv or .csv.gz).
            solution: TFRecord glob with labels, or a CSV of true labels.
            version: 2017, 2018 or 2019.
        """
        from submissions.commands import (
            NO_SOLUTION,
            Commands,
            check_file,
            check_submission,
            check_version,
        )

        file, version = check_file(file), check_version(version)
        if solution is None:
            raise UsageError(NO_SOLUTION)
        check_submission(file, version)  # before the solution's TFRecords are read
        Commands().score(
            file,
            solution=self._read_solution(file, solution, version),
            version=version,
            validated=True,
        )

    # The submissions package never loads TensorFlow: TFRecord globs are read here, into the
    # DataFrames it takes; CSV/TXT paths pass on unchanged.

    @staticmethod
    def _read_ids(ids_from, version):
        from submissions.commands import as_source
        from submissions.truth import is_table

        source = as_source(ids_from)
        if source is None or is_table(source):
            return source
        from y8m.data import read_labels, specs

        return read_labels(source, version=specs.release(version).version)

    @staticmethod
    def _read_solution(file, solution, version):
        from submissions.commands import as_source
        from submissions.score import scored_release
        from submissions.truth import is_table

        source = as_source(solution)
        if source is None or is_table(source):
            return source
        release = scored_release(str(file), version)  # a wrong --version fails before reading
        from y8m.data import read_labels, read_segment_ratings

        if release.has_segments:
            return read_segment_ratings(source)
        return read_labels(source, version=release.version)


class Extras:
    """Research extras: milnce (S3D + MIL-NCE), howto100m (joint embedding), bcfw (clustering).

    The command modules import torch only inside their commands, so help works without it.
    """

    @property
    def milnce(self):
        """MIL-NCE video-text training with S3D (PyTorch)."""
        from extras.milnce.commands import Commands

        return _quiet(Commands)()

    @property
    def howto100m(self):
        """HowTo100M text-video joint embedding (PyTorch)."""
        from extras.howto100m.commands import Commands

        return _quiet(Commands)()

    @property
    def bcfw(self):
        """Discriminative clustering with block-coordinate Frank-Wolfe (numpy/scipy)."""
        from extras.bcfw.commands import Commands

        return _quiet(Commands)()


class Bench:
    """Benchmarks: each prints a table and, last, one JSON line of figures."""

    reader = staticmethod(_returns_none(bench_reader))
    metrics = staticmethod(_returns_none(bench_metrics))
    ensemble = staticmethod(_returns_none(bench_ensemble))
    train = staticmethod(_returns_none(bench_train))
    predict = staticmethod(_returns_none(bench_predict))
    learn = staticmethod(_returns_none(bench_learn))
    extract = staticmethod(_returns_none(bench_extract))
    pack = staticmethod(_returns_none(bench_pack))
    report = staticmethod(_returns_none(bench_report))

    def milnce(self, **flags):
        """S3D forward+backward clips/s and the video loader's decoded clips/s (flags: `y8m extras milnce bench --help`)."""
        from extras.milnce.commands import Commands

        Commands().bench(**flags)

    def howto100m(self, **flags):
        """HowTo100M training and embedding throughput (flags: `y8m extras howto100m bench --help`)."""
        from extras.howto100m.commands import Commands

        Commands().bench(**flags)

    def bcfw(self, **flags):
        """BCFW vs full-batch Frank-Wolfe on growing problems (flags: `y8m extras bcfw bench --help`)."""
        from extras.bcfw.commands import Commands

        Commands().bench(**flags)


def _command_table() -> dict:
    from y8m.cli.ensemble import ensemble_command
    from y8m.extract.dataset import extract
    from y8m.run.average import average
    from y8m.run.compare import compare
    from y8m.run.evaluate import evaluate
    from y8m.run.export import export
    from y8m.run.pack import pack
    from y8m.run.predict import predict
    from y8m.run.report.build import report
    from y8m.run.train import train

    return {
        "synth": synth,
        "inspect": inspect_,
        "extract": _returns_none(extract),
        "models": models,
        "train": _returns_none(train),
        "eval": _returns_none(evaluate),
        "predict": _returns_none(predict),
        "ensemble": _returns_none(ensemble_command),
        "export": _returns_none(export),
        "pack": _returns_none(pack),
        "average": _returns_none(average),
        "compare": _returns_none(compare),
        "report": _returns_none(report),
        "submission": Submission,
        "bench": Bench,
        "extras": Extras,
        "demo": demo,
        "split": split,
    }


def check_flags(tree: dict, argv: list[str]) -> None:
    """Rejects unknown commands and flags with one line, before fire prints a wall of usage."""
    node, path, i = tree, [], 0
    while i < len(argv) and not argv[i].startswith("-"):
        token = argv[i]
        if isinstance(node, dict):
            if token not in node:
                raise UsageError(f"unknown command {token!r}; commands: {', '.join(sorted(node))}")
            node = node[token]
        elif inspect.isclass(node) or not callable(node):  # a command group
            group = node() if inspect.isclass(node) else node
            # Extras' groups are properties: reading one builds its (torch-free) Commands.
            member = None if token.startswith("_") else getattr(group, token, None)
            if member is None:
                subs = [n for n in dir(type(group)) if not n.startswith("_")]
                raise UsageError(
                    f"unknown command {' '.join(path + [token])!r}; choose one of: {', '.join(subs)}"
                )
            node = member
        else:
            break
        path.append(token)
        i += 1
    if not callable(node) or inspect.isclass(node) or isinstance(node, dict):
        return
    params = inspect.signature(node).parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the function validates its own flags (model hyper-parameters)
    names = [n for n in params if n != "self"]
    if not names and i < len(argv) and not argv[i].startswith("-"):
        return  # returns an object (extras groups) whose commands fire resolves
    for token in argv[i:]:
        if token in ("--", "-h", "--help") or not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in names or (name.startswith("no") and name[2:] in names):
            continue
        raise UsageError(
            f"unknown flag --{name} for 'y8m {' '.join(path)}'; valid flags: "
            + ", ".join(f"--{n}" for n in names)
        )
