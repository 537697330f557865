"""`shotlab curate app`: the FiftyOne App really serves the dataset on loopback, and stops cleanly.

The App tests run `python -m shotlab curate app` as a subprocess (SHOTLAB_HOME, set by conftest,
points it at the test workspace), talk to it over 127.0.0.1 only, and check that no server is
left behind after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.addresses import free_port
from shotlab.core.addresses import ensure_port_free, http_url
from shotlab.core.errors import InputError
from tests.imaging import write_class_tree

# s: a cold start imports FiftyOne twice (CLI and server), may start mongod and starts FiftyOne's
# server; on a busy 2-CPU machine (load 12) that took over 90 s
STARTUP_TIMEOUT = 300
STOP_TIMEOUT = 60  # s: closing waits for the server to exit; a few seconds in practice

# Lists the datasets in the store: the `datasets` connection of FiftyOne 1.22's GraphQL schema
# (fiftyone/server/query.py, `Query.datasets`, paginated by fiftyone/server/paginator.py), plus
# `doNotTrack`, the flag the App's page reads before it would load analytics.
DATASETS_QUERY = "query { doNotTrack datasets(search: \"\", first: 1000) { total edges { node { name } } } }"


def port_is_free(port: int) -> bool:
    try:
        ensure_port_free("127.0.0.1", port)
    except InputError:
        return False
    return True


def server_processes(port: int) -> list[str]:
    """Command lines of processes still serving the App on `port` (the wrapper or the server)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "main.py" in " ".join(cmdline) and str(port) in cmdline and "--port" in cmdline:
            found.append(" ".join(cmdline))
    return found


def shotlab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shotlab", *args]


@pytest.fixture
def imported(tmp_path, dataset_name):
    """A small dataset in the store: 2 classes, 5 images."""
    from shotlab.curate.importer import import_path

    write_class_tree(tmp_path / "images", {"cat": 3, "dog": 2})
    import_path(tmp_path / "images", dataset_name, progress=False)
    return dataset_name


def default_interrupt() -> None:
    """Give the App the SIGINT of a foreground terminal program. A shell that starts the test
    run in the background (`make test &`) sets SIGINT to ignored, the child inherits that, and
    Python then leaves it ignored, so Ctrl-C could not be simulated."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class RunningApp:
    """`shotlab curate app NAME --port PORT` in a subprocess; output goes to files, not pipes,
    because FiftyOne's service processes inherit them and may outlive the CLI."""

    def __init__(self, name: str, port: int, logs: Path):
        self.port = port
        self.stdout_path, self.stderr_path = logs / "app.out", logs / "app.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                shotlab_command("curate", "app", name, "--port", str(port)),
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                preexec_fn=default_interrupt)

    def output(self) -> tuple[str, str]:
        return self.stdout_path.read_text(), self.stderr_path.read_text()

    def wait_until_serving(self, timeout: float = STARTUP_TIMEOUT):
        """The App's page, once it answers and the CLI has printed its URL (it is then up)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"app exited with {self.proc.returncode} before serving: {self.output()}")
            if f"http://127.0.0.1:{self.port}/" in self.stdout_path.read_text():
                try:
                    response = requests.get(f"http://127.0.0.1:{self.port}/", timeout=5)
                    if response.status_code == 200:
                        return response
                except requests.RequestException:  # not up yet, or too busy to answer in 5 s
                    pass
            time.sleep(0.5)
        pytest.fail(f"app did not serve on port {self.port} within {timeout} s: {self.output()}")

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """Last resort after a failed test; FiftyOne's wrapper then stops the server itself."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_app_help():
    result = CliRunner().invoke(cli, ["curate", "app", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--address" in result.output
    assert "127.0.0.1" in result.output


def test_app_url():
    assert http_url("127.0.0.1", 5151) == "http://127.0.0.1:5151/"
    assert http_url("::1", 8080) == "http://[::1]:8080/"


def test_ensure_port_free_names_the_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=rf"port {port} .*already in use.*--port"):
            ensure_port_free("127.0.0.1", port)
    ensure_port_free("127.0.0.1", port)  # closed again: free


def test_ensure_port_free_rejects_an_address_of_another_machine():
    with pytest.raises(InputError, match="--address"):
        ensure_port_free("192.0.2.1", free_port())  # TEST-NET-1: never a local address


@pytest.mark.fiftyone
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_app_serves_the_dataset_and_stops_cleanly(imported, tmp_path, sig):
    import requests

    port = free_port()
    app = RunningApp(imported, port, tmp_path)
    try:
        page = app.wait_until_serving()
        assert "<title>FiftyOne</title>" in page.text
        assert "./assets/index-" in page.text  # the App's bundled front end, served locally

        answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": DATASETS_QUERY},
                               timeout=30)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert "errors" not in data, data
        names = [edge["node"]["name"] for edge in data["data"]["datasets"]["edges"]]
        assert imported in names
        assert data["data"]["doNotTrack"] is True  # so the page never loads analytics

        returncode = app.stop(sig)
        assert returncode == 0, app.output()
    finally:
        app.kill()

    stdout, stderr = app.output()
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    assert f"http://127.0.0.1:{port}/" in lines[0] and imported in lines[0]
    assert "Traceback" not in stderr, stderr
    # Closed before the CLI exited: nothing listens any more, and no server process is left.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert port_is_free(port)
    assert server_processes(port) == []


@pytest.mark.fiftyone
def test_app_unknown_dataset_exits_2_with_one_line(dataset_name):
    port = free_port()
    result = subprocess.run(shotlab_command("curate", "app", dataset_name, "--port", str(port)),
                            capture_output=True, text=True, timeout=STARTUP_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"no dataset named '{dataset_name}'" in lines[0]
    assert "shotlab curate import" in lines[0]
    assert port_is_free(port)


@pytest.mark.fiftyone
def test_app_busy_port_exits_2_naming_the_port(imported):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(shotlab_command("curate", "app", imported, "--port", str(port)),
                                capture_output=True, text=True, timeout=STARTUP_TIMEOUT,
                                stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "--port" in lines[0]
    # Refused up front, not after FiftyOne's 60 s wait for a server that cannot bind.
    assert elapsed < 45, elapsed
    assert server_processes(port) == []


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEADDR"), reason="needs SO_REUSEADDR")
def test_ensure_port_free_ignores_time_wait():
    """A just-closed connection (TIME_WAIT on the server side) does not make the port busy."""
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    ensure_port_free("127.0.0.1", port)



@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.1", "::", "example.org"])
def test_app_refuses_a_network_address_without_the_acknowledgement(address):
    """FiftyOne's /media?filepath= serves any readable file: a network address must be asked for
    knowingly. Refused before the dataset is looked up or anything starts."""
    result = CliRunner().invoke(cli, ["curate", "app", "any-name", "--address", address])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"--address {address}" in lines[0] and "--expose-files-to-network" in lines[0]
    assert "/media?filepath=" in lines[0]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"])
def test_loopback_addresses_need_no_acknowledgement(address):
    from shotlab.core.addresses import is_loopback
    from shotlab.curate.app import ensure_exposure_acknowledged

    assert is_loopback(address)
    ensure_exposure_acknowledged(address, expose=False)


def test_the_acknowledgement_allows_a_network_address():
    from shotlab.curate.app import ensure_exposure_acknowledged

    ensure_exposure_acknowledged("0.0.0.0", expose=True)
    result = CliRunner().invoke(cli, ["curate", "app", "--help"])
    assert "--expose-files-to-network" in result.output
