"""`y8m report`: what labelled prediction stores (and training runs) do, as one static HTML page
plus the same tables as CSV."""

from __future__ import annotations

import datetime
import os

import pandas as pd
from tqdm.auto import tqdm

from y8m import diagnostics
from y8m.data.specs import SUBMISSION_TOP_K
from y8m.errors import UsageError, integer
from y8m.fileio import atomic_files, expand_pattern
from y8m.predictions import load_predictions
from y8m.run.report import charts, curves, page

__all__ = ["report"]

INDEX_FILE = "index.html"
MANIFEST_FILE = "report.json"


def report(
    stores: str | None = None,
    runs: str | None = None,
    vocabulary: str | None = None,
    output_dir: str = "report",
    top_k: int = SUBMISSION_TOP_K,
    buckets: int = 5,
    confusions: int = 20,
    progress: bool = True,
) -> dict:
    """Per-class, per-vertical, long-tail, confusion and calibration diagnostics as an HTML page.

    Args:
        stores: glob (or comma-separated globs) of labelled prediction stores (validation).
        runs: glob of run directories whose training curves (loss, learning rate, validation
            GAP) join the page.
        vocabulary: the release's vocabulary.csv: class names, verticals (Vertical1) and
            training-video counts (TrainVideoCount); without it classes are numbers and the
            long tail is bucketed by validation positives.
        output_dir: where index.html and the CSVs go (written as one unit).
        top_k: k of GAP@k, mAP@k and the per-class AP.
        buckets: equal-count class-frequency buckets of the long-tail table.
        confusions: confused class pairs listed per store.
        progress: show a bar while stores load.

    Returns:
        output_dir, index (the page's path), files (CSV paths), stores (name -> summary).
    """
    if not stores and not runs:
        raise UsageError(
            "nothing to report: pass --stores=GLOB (validation stores), --runs=GLOB or both"
        )
    top_k = integer("top_k", top_k, minimum=1)
    buckets = integer("buckets", buckets, minimum=1)
    confusions = integer("confusions", confusions, minimum=1)
    names = _vocabulary(vocabulary)
    tables, sections = {}, []
    if stores:
        ranked = _load(stores, top_k, progress)
        store_tables, store_sections = _store_report(ranked, names, top_k, buckets, confusions)
        tables.update(store_tables)
        sections += store_sections
    if runs:
        history = curves.read_curves(curves.run_directories(runs))
        tables["curves"] = history
        sections.insert(1 if stores else 0, _curves_section(history))
    subtitle = _subtitle(stores, runs, vocabulary, top_k)
    written = _write(str(output_dir), tables, sections, subtitle)
    summary = tables.get("summary")
    result = {
        "output_dir": str(output_dir),
        "index": written["index"],
        "files": written["files"],
        "stores": {} if summary is None else summary.set_index("store").to_dict("index"),
    }
    _print_summary(result)
    return result


def _vocabulary(path: str | None) -> dict[int, dict]:
    if not path:
        return {}
    from y8m.data.vocabulary import read_vocabulary

    return read_vocabulary(str(path))


def _load(pattern: str, top_k: int, progress: bool) -> dict[str, diagnostics.Ranked]:
    paths = expand_pattern(pattern, "prediction stores")
    ranked: dict[str, diagnostics.Ranked] = {}
    for path in tqdm(paths, desc="stores", unit="store", disable=not progress):
        store = load_predictions(path)
        name = store.model_name or os.path.splitext(os.path.basename(path))[0]
        if name in ranked:  # two stores of one model (validate and fold files): keep both
            name = os.path.basename(path)
        ranked[name] = diagnostics.rank_store(store, top_k)
    return ranked


def _store_report(ranked, names, top_k, buckets, confusions) -> tuple[dict, list[str]]:
    """The stores' tables (for CSV) and the page's sections, in reading order."""
    classes = diagnostics.class_table(ranked, names)
    verticals = diagnostics.vertical_table(classes)
    tail = diagnostics.long_tail_table(classes, buckets)
    rows, calibration, confused = [], {}, []
    for name, r in ranked.items():
        calibration[name], ece = diagnostics.calibration_table(r)
        rows.append({"store": name, **diagnostics.summary(r), "calibration_error": ece})
        pairs = diagnostics.confused_pairs(r, confusions)
        pairs.insert(0, "store", name)
        confused.append(_named_pairs(pairs, names))
    summary = pd.DataFrame(rows)
    confused = pd.concat(confused, ignore_index=True)
    calibration_csv = pd.concat(
        [t.assign(store=n) for n, t in calibration.items()], ignore_index=True
    )
    classes["train_videos"] = classes["train_videos"].astype("Int64")
    tables = {
        "summary": summary,
        "classes": classes,
        "verticals": verticals,
        "long_tail": tail,
        "confusions": confused,
        "calibration": calibration_csv[["store", *calibration[next(iter(calibration))].columns]],
    }
    return tables, _store_sections(tables, calibration, top_k, bool(names))


def _named_pairs(pairs: pd.DataFrame, names: dict[int, dict]) -> pd.DataFrame:
    if names:
        for column in ("true_class", "predicted_class"):
            at = pairs.columns.get_loc(column) + 1
            labels = [names.get(int(c), {}).get("name", "") for c in pairs[column]]
            pairs.insert(at, column.replace("class", "name"), labels)
    return pairs


def _store_sections(tables, calibration, top_k: int, named: bool) -> list[str]:
    classes = tables["classes"]
    shown = classes.drop(columns=[c for c in classes.columns if c.startswith("predicted:")])
    tail = tables["long_tail"]
    frequency = "training videos" if tail["count_source"].iloc[0] == "train_videos" else "positives"
    ece = ", ".join(
        f"{row.store}: {row.calibration_error:.4f}" for row in tables["summary"].itertuples()
    )
    return [
        page.section(
            "Summary",
            page.table(tables["summary"], table_id="summary-table"),
            note=f"GAP@{top_k}, Hit@1, PERR and mAP@{top_k} of each store against its labels.",
            anchor="summary",
        ),
        page.section(
            "Verticals",
            page.image(charts.vertical_chart(tables["verticals"]), "mean AP per vertical"),
            page.table(tables["verticals"], table_id="verticals-table", sortable=True),
            note="Mean class AP over the classes of each vertical (Vertical1)"
            + ("." if named else "; pass --vocabulary=vocabulary.csv for the verticals."),
            anchor="verticals",
        ),
        page.section(
            "The long tail",
            page.image(charts.long_tail_chart(tail), "AP by class frequency"),
            page.image(charts.frequency_scatter(classes), "class AP by frequency"),
            page.table(tail, table_id="long-tail-table"),
            note=f"Classes in {len(tail)} equal-count buckets by {frequency}, rarest first.",
            anchor="long-tail",
        ),
        page.section(
            "Most confused class pairs",
            page.table(tables["confusions"], table_id="confusions-table", sortable=True),
            note="A false positive ranked above a true label of the same video (or the label "
            "missed the top-k). rate = videos / positives of the true class; both_labels = "
            "videos labelled with both (high: the pair co-occurs).",
            anchor="confusions",
        ),
        page.section(
            "Calibration",
            page.image(charts.calibration_chart(calibration), "reliability of the top scores"),
            note=f"Top-{top_k} scores in 10 bins; expected calibration error {ece}.",
            anchor="calibration",
        ),
        page.section(
            "Classes",
            page.scrolling(page.table(shown, table_id="classes-table", sortable=True)),
            note="Every class with positives; click a header to sort.",
            anchor="classes",
        ),
    ]


def _curves_section(history: pd.DataFrame) -> str:
    return page.section(
        "Training curves",
        page.image(charts.curves_chart(history), "training curves"),
        page.table(curves.final_values(history), table_id="runs-table", sortable=True),
        note="Loss, learning rate and validation GAP of each run, from its history.csv.",
        anchor="training",
    )


def _subtitle(stores, runs, vocabulary, top_k) -> str:
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"made {made}", f"top-k {top_k}"]
    parts += [f"stores {stores}"] if stores else []
    parts += [f"runs {runs}"] if runs else []
    parts += [f"vocabulary {vocabulary}"] if vocabulary else ["no vocabulary"]
    return "; ".join(parts)


def _write(output_dir: str, tables: dict, sections: list[str], subtitle: str) -> dict:
    os.makedirs(output_dir, exist_ok=True)
    csvs = {name: os.path.join(output_dir, f"{name}.csv") for name in tables}
    index = os.path.join(output_dir, INDEX_FILE)
    text = page.document(
        "y8m report", subtitle, sections, [os.path.basename(p) for p in csvs.values()]
    )
    with atomic_files([*csvs.values(), index], os.path.join(output_dir, MANIFEST_FILE)) as tmp:
        for name, path in csvs.items():
            tables[name].to_csv(tmp[path], index=False, float_format="%.6g")
        with open(tmp[index], "w", encoding="utf-8") as f:
            f.write(text)
    return {"index": index, "files": list(csvs.values())}


def _print_summary(result: dict) -> None:
    for name, row in result["stores"].items():
        print(
            f"{name}: GAP {row['gap']:.4f}  Hit@1 {row['hit_at_one']:.4f}  PERR {row['perr']:.4f}"
            f"  mAP {row['map']:.4f}  ({row['videos']} videos)"
        )
    print(f"report: {result['index']}")
