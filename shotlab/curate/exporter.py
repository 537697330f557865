"""`shotlab curate export`: copy a dataset out in a layout `curate import` reads back.

folder:   [split/]class/image   (multiclass, every sample labelled, splits all set or all unset)
csv:      images/ + labels.csv  (filepath,label,split, or one-hot columns for multilabel)
fiftyone: a FiftyOneDataset directory with its media (every field kept)

A text dataset exports as csv only: OUT/comments.csv (text, label or one-hot columns, split,
group), which `curate import` reads back as the same comments. So does a posts dataset:
OUT/posts.csv (image_path, text, label with "a;b" for multilabel, split) beside OUT/images/,
which `curate import OUT/posts.csv` reads back as the same posts.

Samples an annotator tagged `exclude` are left out of the folder and CSV layouts (which hold
no tags: they would come back as ordinary labelled data); the fiftyone layout keeps them with
their tags, and `curate import` of it leaves them out again.

Images are copied (never moved); the export folder must be new or empty, so nothing the user
has there is overwritten, and every write stays inside it (a class name that is not a plain
folder name is refused for the folder format). An export that fails leaves the folder as it
was: gone, or empty again.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from itertools import chain, count
from pathlib import Path

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.names import child_path
from shotlab.core.progress import progress_bar
from shotlab.curate.importer import LABELS_CSV
from shotlab.curate.review import EXCLUDE_TAG
from shotlab.curate.readers.csvfile import LABEL_COLUMNS, MULTI_SEPARATOR
from shotlab.curate.records import normalise_split


@dataclass(frozen=True)
class Item:
    filepath: Path
    labels: tuple[str, ...]
    split: str | None
    sha256: str


def items_of(dataset) -> list[Item]:
    return [Item(Path(f), labels, split, digest) for f, labels, split, digest in
            zip(dataset.values("filepath"), store.sample_labels(dataset),
                dataset.values("split"), dataset.values("sha256"))]


def check_new_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; choose a new export folder")


def copy_unique(item: Item, folder: Path, used: set[Path]) -> Path:
    """Copy the image into `folder`, adding a hash (then a count) to its name if another file
    took the name: identical files of the same name are still copied once each."""
    name, stem, suffix = item.filepath.name, item.filepath.stem, item.filepath.suffix
    candidates = chain([name, f"{stem}-{item.sha256[:8]}{suffix}"],
                       (f"{stem}-{item.sha256[:8]}-{n}{suffix}" for n in count(2)))
    dest = next(folder / c for c in candidates if folder / c not in used)
    used.add(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(item.filepath, dest)
    return dest


def check_sources(name: str, filepaths: list[str]) -> None:
    """Every image still where the dataset says, before anything is written."""
    missing = [f for f in filepaths if not Path(f).is_file()]
    if missing:
        raise InputError(f"{len(missing)} of dataset '{name}''s image files are gone (first: "
                         f"{missing[0]}); restore them, then export again")


def check_folder_names(name: str, items: list[Item], hint: str) -> None:
    """Each label must come back as the same class from a folder tree: one plain folder name,
    not hidden (import skips dot folders), and not a split's name when there are no splits."""
    splits = any(i.split for i in items)
    for label in sorted({i.labels[0] for i in items}):
        unsafe = (label in ("", ".", "..") or label.startswith(".") or "/" in label
                  or "\\" in label or (not splits and normalise_split(label) is not None))
        if unsafe:
            raise InputError(f"dataset '{name}' has the class {label!r}, which a folder tree "
                             f"cannot hold as a folder name that imports back as itself ({hint})")


def check_folder_layout(name: str, task: str, items: list[Item]) -> None:
    hint = "use --format csv or fiftyone"
    if task == "multilabel":
        raise InputError(f"dataset '{name}' is multilabel; a folder tree holds one label per image ({hint})")
    unlabeled = sum(not i.labels for i in items)
    if unlabeled:
        raise InputError(f"dataset '{name}' has {unlabeled} unlabeled samples, which a folder "
                         f"tree cannot hold ({hint})")
    unassigned = sum(i.split is None for i in items)
    if 0 < unassigned < len(items):
        raise InputError(f"dataset '{name}' has {unassigned} samples without a split; assign "
                         f"splits first (`shotlab curate split`) or {hint}")
    check_folder_names(name, items, hint)


def export_folder(dataset, out: Path) -> int:
    items = items_of(dataset)
    check_folder_layout(dataset.dataset_name, store.task_of(dataset), items)
    out.mkdir(parents=True, exist_ok=True)
    used: set[Path] = set()
    for item in progress_bar(items, unit="img", desc="Exporting"):
        copy_unique(item, child_path(out, *filter(None, [item.split, item.labels[0]])), used)
    return len(items)


def export_csv(dataset, out: Path) -> int:
    columns, cells = label_columns(dataset, ("filepath", "split"))
    return write_with_images(dataset, out / LABELS_CSV, ["filepath", *columns, "split"],
                             lambda item, relative, _: [relative, *cells(item.labels),
                                                        item.split or ""])


def label_columns(dataset, others: tuple[str, ...], *, one_column: bool = False):
    """(the label columns' names, labels -> their cells) for a CSV export whose other columns
    are `others`: one-hot columns for a multilabel dataset (unless `one_column`), else one
    `label` column, "a;b" for several. A class the import would read back as another is
    refused (`check_csv_names`)."""
    classes = store.class_names(dataset)
    onehot = store.task_of(dataset) == "multilabel" and not one_column
    check_csv_names(dataset, classes, others if onehot else None)
    if onehot:
        return classes, lambda labels: [int(c in labels) for c in classes]
    return ["label"], lambda labels: [MULTI_SEPARATOR.join(labels)]


def write_table(table: Path, header: list[str], rows) -> None:
    """`table` as a UTF-8 CSV of `header` and `rows`, written whole or not at all."""
    from shotlab.core.files import atomic_path

    table.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(table) as partial, open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_with_images(dataset, table: Path, header: list[str], row, extras=None) -> int:
    """Copy each sample's image into images/ beside `table` and write `table`, a CSV of `header`
    and `row(item, the image's path relative to the table, extra)` per sample (`extras`: a
    value per sample, e.g. a post's caption)."""
    items, used, out = items_of(dataset), set(), table.parent

    def rows():
        for item, extra in zip(progress_bar(items, unit="img", desc="Exporting"),
                               extras or [None] * len(items)):
            relative = copy_unique(item, out / "images", used).relative_to(out).as_posix()
            yield row(item, relative, extra)

    write_table(table, header, rows())
    return len(items)


def check_csv_names(dataset, classes: list[str], others: tuple[str, ...] | None) -> None:
    """Refuse a class a CSV import reads back as something else (`csv_refusal`), naming it."""
    refused = csv_refusal(classes, others)
    if refused is not None:
        name, why = refused
        raise InputError(f"dataset '{dataset.dataset_name}' has the class {name!r}, {why}; "
                         f"rename the class first{other_formats(dataset)}")


def csv_refusal(classes: list[str], others: tuple[str, ...] | None) -> tuple[str, str] | None:
    """(class, why) for the first class a CSV import would read back as something else: one
    with spaces at its ends (the reader drops them: ' dog' came back as 'dog'); in one-hot
    columns beside `others`, one named as a column the import finds, letter case aside (a
    class 'label' came back as the label column, its classes '0' and '1'); in a label column
    (`others` None), one holding the separator ('a;b' came back as two labels)."""
    padded = next((c for c in classes if c != c.strip()), None)
    if padded is not None:
        return padded, "with spaces at its ends that a CSV import drops"
    if others is None:
        joined = next((c for c in classes if MULTI_SEPARATOR in c), None)
        return None if joined is None else (joined, (
            f"which a CSV label column reads back as {len(joined.split(MULTI_SEPARATOR))} "
            f"labels ('{MULTI_SEPARATOR}' separates labels)"))
    found = {*others, *LABEL_COLUMNS}
    column = next((c for c in classes if c.strip().lower() in found), None)
    return None if column is None else (
        column, f"which a CSV import reads as its '{column.strip().lower()}' column")


def other_formats(dataset) -> str:
    """', or export --format ...' naming the layouts that hold any class name, where the
    dataset has one (images: fiftyone, and folder for a multiclass set; comments and posts
    export as csv alone)."""
    if store.kind_of(dataset) in KIND_EXPORTERS:
        return ""
    multiclass = store.task_of(dataset) != "multilabel"
    return f", or export --format {'folder or ' * multiclass}fiftyone"


def export_fiftyone(dataset, out: Path) -> int:
    fo = store.fiftyone()
    dataset.export(export_dir=str(out), dataset_type=fo.types.FiftyOneDataset, export_media=True,
                   progress=False)
    return len(dataset)


EXPORTERS = {"folder": export_folder, "csv": export_csv, "fiftyone": export_fiftyone}
COMMENTS_CSV = "comments.csv"


def export_text_csv(dataset, out: Path) -> int:
    """The comments as OUT/comments.csv, in the columns text import reads."""
    columns, cells = label_columns(dataset, ("text", "split", "group"))
    groups = dataset.values("group") if "group" in dataset.get_field_schema() else None
    rows = zip(dataset.values("text"), store.sample_labels(dataset), dataset.values("split"),
               groups or [None] * len(dataset))
    write_table(out / COMMENTS_CSV, ["text", *columns, "split", "group"],
                ([text, *cells(labels), split or "", group or ""]
                 for text, labels, split, group in rows))
    return len(dataset)


POSTS_CSV = "posts.csv"


def export_post_csv(dataset, out: Path) -> int:
    """The posts as OUT/posts.csv beside their images in OUT/images/, in the columns posts
    import reads (a caption in a folder tree or labels.csv would be lost)."""
    columns, cells = label_columns(dataset, ("image_path", "text", "split"),
                                   one_column=True)  # posts import reads "a;b"
    return write_with_images(
        dataset, out / POSTS_CSV, ["image_path", "text", *columns, "split"],
        lambda item, relative, text: [relative, text, *cells(item.labels), item.split or ""],
        extras=dataset.values("text"))


# The formats of the kinds that are more than an image: (what the dataset holds, its formats).
KIND_EXPORTERS = {store.TEXT: ("comments", {"csv": export_text_csv}),
                  store.POST: ("posts (an image and its caption)", {"csv": export_post_csv})}


def excluded_count(name: str) -> int:
    """How many of dataset `name`'s samples are tagged `exclude`."""
    return store.load(name).match_tags(EXCLUDE_TAG).count()


def export_dataset(name: str, out: str | Path, fmt: str = "folder") -> int:
    """Copy dataset `name` to `out` in format `fmt`; returns the number of samples exported
    (the excluded ones left out but for the fiftyone layout: the module docstring)."""
    if fmt not in EXPORTERS:
        raise InputError(f"unknown export format '{fmt}'; expected one of {', '.join(EXPORTERS)}")
    dataset = store.load(name)
    kind = store.kind_of(dataset)
    holds, exporters = KIND_EXPORTERS.get(kind, ("images", EXPORTERS))
    if fmt not in exporters:
        raise InputError(f"dataset '{name}' holds {holds}; export it with --format "
                         f"{', '.join(exporters)} (a CSV that `curate import` reads back)")
    out = Path(out)
    check_new_folder(out)
    if fmt != "fiftyone":  # every sample, the excluded ones with their tags
        dataset = dataset.match_tags(EXCLUDE_TAG, bool=False)  # a view: the exporters read it
    if kind != store.TEXT:
        check_sources(name, dataset.values("filepath"))
    existed = out.exists()
    try:
        return exporters[fmt](dataset, out)
    except BaseException as exc:  # the folder was new or empty: leave it so, not half-written
        shutil.rmtree(out, ignore_errors=True)
        if existed:
            out.mkdir()
        if isinstance(exc, OSError):  # a full disk, a file removed meanwhile
            raise InputError(f"export to {out} failed ({exc}); nothing was left there") from None
        raise
