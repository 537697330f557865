"""`shotlab curate pull roboflow`: the real CLI and the real Roboflow SDK against a local fake API.

Each CLI run is a subprocess with `API_URL` pointing at the fake server (the SDK reads it when it
is imported) and a throwaway HOME, so no real Roboflow config is read or written.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.curate.records import normalise_split
from shotlab.curate.roboflow_pull import RoboflowRef, parse_ref
from tests.curate.roboflow_server import FakeRoboflow
from tests.imaging import write_image

API_KEY = "rfKey-s3cr3t-7f3a9c1e5b"  # lowercase letters: the SDK only checks keys that have some


@pytest.fixture
def server(tmp_path):
    # A project name of its own: downloads are kept per workspace/project/version in the
    # session-wide test workspace, and each test must start without one.
    project = f"vehicles-{uuid.uuid4().hex[:8]}"
    with FakeRoboflow(API_KEY, tmp_path / "scratch", project=project) as api:
        yield api


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def pull(server_url: str, home: Path, *args: str, env_key: str | None = None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROBOFLOW_") and k not in ("API_URL", "DATASET_DIRECTORY")}
    env.update(HOME=str(home), API_URL=server_url)
    if env_key:
        env["ROBOFLOW_API_KEY"] = env_key
    return subprocess.run([sys.executable, "-m", "shotlab", "curate", "pull", "roboflow", *args],
                          env=env, cwd=home, capture_output=True, text=True, timeout=300)


def ref(server: FakeRoboflow, version: int | None = None) -> str:
    return f"{server.workspace}/{server.project}/{version or server.version}"


def download_dir(server: FakeRoboflow, fmt: str) -> Path:
    return (Path(os.environ["SHOTLAB_HOME"]).resolve() / "downloads" / "roboflow" / server.workspace
            / server.project / str(server.version) / fmt)


def expected(server: FakeRoboflow, fmt: str) -> dict[str, tuple]:
    return {f.path: (tuple(sorted(f.labels)), normalise_split(f.split)) for f in server.files(fmt)}


def stored(name: str, root: Path) -> dict[str, tuple]:
    """Each sample's path inside the download, with its sorted class names and split."""
    dataset = store.load(name)
    rows = zip(dataset.values("filepath"), store.sample_labels(dataset), dataset.values("split"))
    return {Path(p).relative_to(root).as_posix(): (tuple(sorted(l)), s) for p, l, s in rows}


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def assert_key_kept_out(secret: str, name: str, *roots: Path,
                        outputs: tuple[str, ...] = ()) -> None:
    for root in roots:
        assert files_holding(root, secret) == []
    for text in outputs:
        assert secret not in text
    dataset = store.load(name)
    assert secret not in json.dumps([s.to_dict() for s in dataset], default=str)
    assert secret not in json.dumps(dataset.info, default=str)


def test_parse_ref_gives_workspace_project_and_version():
    parsed = parse_ref("my-team/vehicles_2/3")
    assert parsed == RoboflowRef("my-team", "vehicles_2", 3)
    assert str(parsed) == "my-team/vehicles_2/3"
    with pytest.raises(AttributeError):
        parsed.version = 4  # frozen


@pytest.mark.parametrize("bad", ["my-team/vehicles", "my-team/vehicles/three", "my-team/vehicles/0",
                                 "a/b/c/3", "my-team/../3", "my team/vehicles/3", ""])
def test_parse_ref_refuses_other_forms(bad):
    with pytest.raises(InputError, match="WORKSPACE/PROJECT/VERSION") as caught:
        parse_ref(bad)
    assert f"'{bad}'" in str(caught.value)


@pytest.mark.fiftyone
def test_folder_pull_imports_class_names_and_splits_then_reuses_the_download(
        server, home, dataset_name):
    result = pull(server.url, home, ref(server), "--name", dataset_name, "--api-key", API_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Imported 9 new") and dataset_name in result.stdout
    assert len(result.stdout.splitlines()) == 1  # the report alone: the SDK's chatter is on stderr
    assert "loading Roboflow" not in result.stdout and "loading Roboflow" in result.stderr
    root = download_dir(server, "folder")
    assert stored(dataset_name, root) == expected(server, "folder")
    assert store.class_names(store.load(dataset_name)) == ["Sports car", "Truck"]
    assert sorted(set(store.load(dataset_name).values("split"))) == ["test", "train", "val"]
    ws, proj = server.workspace, server.project
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/"), ("GET", f"/{ws}"), ("GET", f"/{ws}/{proj}"), ("GET", f"/{ws}/{proj}"),
        ("GET", f"/{ws}/{proj}/3"), ("GET", f"/{ws}/{proj}/3/folder"), ("GET", "/ds/folder-3")]

    again = pull(server.url, home, ref(server), "--name", dataset_name, "--api-key", API_KEY,
                 "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert (second["added"], second["already_present"]) == (0, 9)
    assert len(server.requests) == 7 and len(server.downloads()) == 1
    assert len(store.load(dataset_name)) == 9
    assert_key_kept_out(API_KEY, dataset_name, Path(os.environ["SHOTLAB_HOME"]), home,
                        outputs=(result.stdout, result.stderr, again.stdout, again.stderr))


@pytest.mark.fiftyone
def test_multiclass_pull_as_multilabel_keeps_label_sets_and_unlabeled_rows(
        server, home, dataset_name):
    result = pull(server.url, home, ref(server), "--name", dataset_name, "--format", "multiclass",
                  "--multilabel", "--json", env_key=API_KEY)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the report alone
    assert (report["added"], report["task"], report["format"]) == (7, "multilabel", "roboflow")
    found = stored(dataset_name, download_dir(server, "multiclass"))
    assert found == expected(server, "multiclass")
    assert sorted(labels for labels, _ in found.values()) == [
        (), ("Sports car",), ("Sports car",), ("Sports car", "Truck"), ("Sports car", "Truck"),
        ("Truck",), ("Truck",)]
    assert ("GET", "/ds/multiclass-3") in [(r.method, r.path) for r in server.requests]
    assert "multiclass" in server.exports  # the SDK asked Roboflow to generate the export first
    assert_key_kept_out(API_KEY, dataset_name, Path(os.environ["SHOTLAB_HOME"]), home,
                        outputs=(result.stdout, result.stderr))


@pytest.mark.fiftyone
def test_key_comes_from_roboflows_own_config_when_not_given(server, home, dataset_name):
    config = home / ".config" / "roboflow" / "config.json"
    config.parent.mkdir(parents=True)
    logged_in = {"name": "My Team", "url": server.workspace, "apiKey": API_KEY}
    config.write_text(json.dumps({"workspaces": {"abc123": logged_in},
                                  "RF_WORKSPACE": server.workspace}))
    result = pull(server.url, home, ref(server), "--name", dataset_name)
    assert result.returncode == 0, result.stderr
    assert len(store.load(dataset_name)) == 9
    assert_key_kept_out(API_KEY, dataset_name, Path(os.environ["SHOTLAB_HOME"]),
                        outputs=(result.stdout, result.stderr))


def test_wrong_key_is_one_line_without_the_key(server, home):
    wrong = "rfKey-wrong-0000aaaa"
    result = pull(server.url, home, ref(server), "--api-key", wrong)
    assert result.returncode in (1, 2)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: Roboflow refused the API key for " + ref(server))
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr  # Roboflow's 401 body echoes the key; it is scrubbed
    assert server.requests[0].query["api_key"] == wrong  # the key did reach the server
    assert not download_dir(server, "folder").parent.exists()


def test_missing_key_says_how_to_give_one(server, home):
    result = pull(server.url, home, ref(server))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: no Roboflow API key to pull {ref(server)}; give the key with --api-key or "
        f"ROBOFLOW_API_KEY, or run `roboflow login` (keys: https://app.roboflow.com/settings/api)"]
    assert server.requests == []


def test_unreachable_api_fails_without_the_key(home):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = pull(f"http://127.0.0.1:{port}", home, "my-team/vehicles/3", "--api-key", API_KEY)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: could not download Roboflow dataset my-team/vehicles/3: "
        f"cannot reach http://127.0.0.1:{port} (ConnectionError)")
    assert API_KEY not in result.stdout + result.stderr


def test_unknown_version_names_the_ref(server, home):
    result = pull(server.url, home, ref(server, version=4), "--api-key", API_KEY)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: could not download Roboflow dataset {ref(server, 4)}: "
        f"Version number 4 is not found.")


def test_unknown_workspace_is_bad_input_naming_the_ref(server, home):
    result = pull(server.url, home, f"other-team/{server.project}/3", "--api-key", API_KEY)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"Error: Roboflow has no other-team/{server.project}/3 for this key (")


def test_detection_project_is_refused(tmp_path, home):
    with FakeRoboflow(API_KEY, tmp_path / "scratch", project=f"boxes-{uuid.uuid4().hex[:8]}",
                      project_type="object-detection") as api:
        result = pull(api.url, home, ref(api), "--api-key", API_KEY)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: Roboflow project {api.workspace}/{api.project} is of type 'object-detection'; "
        f"shotlab pulls classification projects only")
    assert not any(r.path.startswith("/ds/") for r in api.requests)


@pytest.mark.fiftyone
def test_an_unfinished_download_is_replaced_not_reused(server, home, dataset_name):
    leftover = download_dir(server, "folder")  # no completion marker: an interrupted pull
    write_image(leftover / "train" / "Truck" / "stale.jpg", seed=99, fmt="JPEG")
    result = pull(server.url, home, ref(server), "--name", dataset_name, "--api-key", API_KEY)
    assert result.returncode == 0, result.stderr
    assert len(server.downloads()) == 1
    assert not (leftover / "train" / "Truck" / "stale.jpg").exists()
    assert stored(dataset_name, leftover) == expected(server, "folder")


def test_importing_the_sdk_leaves_warning_format_alone():
    # roboflow replaces warnings.formatwarning when imported; a fresh process shows it undone.
    code = ("import warnings; before = warnings.formatwarning; "
            "from shotlab.curate.roboflow_pull import import_sdk; import_sdk(); "
            "import roboflow.core.project; assert warnings.formatwarning is before")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_sdk_errors_are_scrubbed_before_they_are_shortened(monkeypatch, tmp_path):
    import requests

    from shotlab.curate.roboflow_pull import import_sdk, sdk_error

    monkeypatch.setenv("HOME", str(tmp_path))  # if this is the first import: no real config read
    import_sdk()
    parsed = RoboflowRef("my-team", "vehicles", 3)
    body = json.dumps({"error": {"message": "x" * 190 + f" key {API_KEY} revoked", "status": 401}})
    refused = sdk_error(RuntimeError(body), parsed, API_KEY)
    assert isinstance(refused, InputError) and "rfKey" not in str(refused)
    assert str(refused).startswith("Roboflow refused the API key for my-team/vehicles/3 (xxx")
    url_error = requests.ConnectionError(f"Max retries exceeded with url: /my-team?api_key={API_KEY}")
    unreachable = sdk_error(url_error, parsed, API_KEY)
    assert API_KEY not in str(unreachable) and unreachable.exit_code == 1


@pytest.mark.fiftyone
def test_a_zip_bomb_from_the_server_is_refused_and_nothing_is_kept(server, home, dataset_name):
    """The SDK's own unzip has no limit; a pull goes through shotlab's (#11 item 4)."""
    import io
    import zipfile

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.roboflow.txt", "exported via roboflow.com")
        with archive.open("train/car/zeros.jpg", "w") as member:
            for _ in range(20):
                member.write(bytes(1024 ** 2))
    server._zips["folder"] = bomb.getvalue()
    result = pull(server.url, home, ref(server), "--name", dataset_name, "--api-key", API_KEY)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "roboflow.zip: train/car/zeros.jpg is compressed" in error and "SHOTLAB_ZIP_MAX_RATIO" in error
    root = download_dir(server, "folder")
    assert not root.exists() and list(root.parent.iterdir()) == []  # no folder, no partial
    assert dataset_name not in store.list_datasets()
