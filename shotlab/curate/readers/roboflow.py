"""Roboflow classification exports, zipped or extracted.

`folder` layout: `{train,valid,test}/<class name>/<stem>_jpg.rf.<hash>.jpg`, read as a folder tree.
`multiclass` layout: `{split}/_classes.csv` with header `filename, classA, classB` and one-hot
0/1 rows (all-zero rows are unlabeled images), read as one-hot CSVs.
"""

from __future__ import annotations

from pathlib import Path

from shotlab.curate.readers.csvfile import media_in, read_table
from shotlab.curate.readers.folder import read_folder, subfolders
from shotlab.curate.records import Scan, Unlisted, normalise_split

CLASSES_CSV = "_classes.csv"
README = "README.roboflow.txt"


def classes_csvs(root: Path) -> list[Path]:
    return [f / CLASSES_CSV for f in subfolders(root) if (f / CLASSES_CSV).is_file()]


def looks_like_roboflow(root: Path) -> bool:
    return (root / README).is_file() or bool(classes_csvs(root))


def read_roboflow(root: Path, *, multilabel: bool) -> Scan:
    tables = classes_csvs(root)
    if not tables:
        return read_folder(root)
    scan = Scan()
    for table in tables:
        scan.extend(read_table(table, multilabel=multilabel,
                               default_split=normalise_split(table.parent.name)))
    for folder in subfolders(root):  # a split whose _classes.csv is missing: said, not lost
        if not (folder / CLASSES_CSV).is_file():
            scan.unlisted += [Unlisted(path, folder / CLASSES_CSV) for path in media_in(folder)]
    return scan
