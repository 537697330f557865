"""MLflow logging for training runs: a local embedded store by default, a server if given.

By default the store is `<workspace>/mlflow.db` (SQLite) with artifacts in
`<workspace>/mlflow-artifacts`, so nothing leaves the machine; `--tracking-uri` points at a
team server. One experiment per dataset (`shotlab/<dataset>`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from shotlab.core import workspace


def default_tracking_uri() -> str:
    return f"sqlite:///{workspace.current().home / 'mlflow.db'}"


# What MLflow refuses in a metric's name (it takes letters, digits, _ - . / and spaces, and
# colons but not on Windows), and its longest name. A class is named by its user ("18+",
# "hate+speech", "violence 😡"): as a metric key such a name failed the run's last step with
# MLflow's traceback.
METRIC_NAME_REFUSED = re.compile(r"[^\w.\-]")
METRIC_NAME_MAX = 250


def flat_numbers(data: dict, prefix: str = "", taken: set | None = None) -> dict[str, float]:
    """Numeric leaves of a nested dict as `a.b.c` keys (MLflow metrics are flat floats); a
    character MLflow refuses (spaces and slashes too, as always) becomes `_`. A name that the
    change (or the cut at MLflow's longest) makes one another's gets `_2`, `_3`: classes '😡'
    and '🔞' would otherwise log one value under one name."""
    out: dict[str, float] = {}
    taken = set() if taken is None else taken
    for key, value in data.items():
        name = unique_name(METRIC_NAME_REFUSED.sub("_", f"{prefix}{key}"), taken)
        if isinstance(value, dict):
            out.update(flat_numbers(value, f"{name}.", taken))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def unique_name(name: str, taken: set) -> str:
    """`name` cut to METRIC_NAME_MAX, with a `_N` suffix where it is in `taken`; added to it."""
    found, number = name[:METRIC_NAME_MAX], 1
    while found in taken:
        number += 1
        suffix = f"_{number}"
        found = name[:METRIC_NAME_MAX - len(suffix)] + suffix
    taken.add(found)
    return found


def experiment_id(mlflow, dataset: str) -> str:
    name = f"shotlab/{dataset}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (workspace.current().home / "mlflow-artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


def log_run(run_dir: Path, *, dataset: str, params: dict, history: list[dict], metrics: dict,
            tracking_uri: str | None = None) -> str:
    """Log one finished run (params, per-epoch and final metrics, the run folder); its id."""
    workspace.apply_offline_environment()
    import mlflow

    for chatty in ("alembic", "mlflow"):  # schema migrations and store set-up, on stderr
        logging.getLogger(chatty).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri or default_tracking_uri())
    with mlflow.start_run(experiment_id=experiment_id(mlflow, dataset),
                          run_name=Path(run_dir).name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        for row in history:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"},
                               step=int(row["epoch"]))
        mlflow.log_metrics(flat_numbers(metrics))
        for path in sorted(Path(run_dir).rglob("*")):
            if path.is_file() and "checkpoints" not in path.relative_to(run_dir).parts:
                # Checkpoints stay in the run folder: copying them would double the disk use.
                folder = path.parent.relative_to(run_dir).as_posix()
                mlflow.log_artifact(str(path), artifact_path=None if folder == "." else folder)
    return run.info.run_id
