"""`shotlab serve`: --help, and bad input refused before anything listens."""

from __future__ import annotations

from click.testing import CliRunner

from shotlab.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_help_names_the_endpoints_and_options():
    result = run("serve", "--help")
    assert result.exit_code == 0
    for text in ("/v1/moderate", "--max-batch", "--max-wait-ms", "--api-key-file", "--no-cache"):
        assert text in result.output


def test_not_a_bundle(tmp_path):
    result = run("serve", tmp_path, "--port", 0, "--store", tmp_path / "store")
    assert result.exit_code == 2 and "not a shotlab bundle" in result.output


def test_empty_api_key_file(tmp_path, exported):
    (tmp_path / "key").write_text("\n")
    result = run("serve", exported.path, "--api-key-file", tmp_path / "key")
    assert result.exit_code == 2 and "first line is empty" in result.output


def test_api_key_is_the_files_first_line_or_the_variable_stripped(tmp_path, monkeypatch):
    from shotlab.serve.service import API_KEY_ENV, read_api_key

    (tmp_path / "key").write_text("s3cret\n# rotated 2026-12-01\n")
    assert read_api_key(tmp_path / "key") == "s3cret"
    monkeypatch.setenv(API_KEY_ENV, " s3cret \n")
    assert read_api_key(None) == "s3cret"


def test_a_blank_api_key_variable_is_refused(exported, tmp_path, monkeypatch):
    """SHOTLAB_API_KEY=" " started the server with no authentication and no word (an empty
    --api-key-file was refused); unset or empty still means no key."""
    from shotlab.serve.service import API_KEY_ENV

    monkeypatch.setenv(API_KEY_ENV, " \n")
    result = run("serve", exported.path, "--store", tmp_path / "store")
    assert result.exit_code == 2 and f"${API_KEY_ENV} is blank" in result.output
    assert not (tmp_path / "store").exists()


def test_a_key_no_client_can_send_is_refused_at_start(exported, tmp_path, monkeypatch):
    """A key with a non-ASCII character started the server, and then no request could ever
    match it (headers are read as Latin-1; httpx cannot even send it): every client locked
    out, with no word at start."""
    from shotlab.serve.service import API_KEY_ENV

    (tmp_path / "key").write_text("clé-secrète\n", encoding="utf-8")
    result = run("serve", exported.path, "--api-key-file", tmp_path / "key", "--store",
                 tmp_path / "store")
    assert result.exit_code == 2 and "other than printable ASCII" in result.output
    monkeypatch.setenv(API_KEY_ENV, "tab\tkey")
    result = run("serve", exported.path, "--store", tmp_path / "store")
    assert result.exit_code == 2 and f"${API_KEY_ENV}: the key holds" in result.output
    assert not (tmp_path / "store").exists()


def test_batch_larger_than_the_queue_is_refused(tmp_path):
    result = run("serve", tmp_path, "--max-items", 8, "--queue-size", 4)
    assert result.exit_code == 2 and "could never be queued" in result.output


def test_a_port_in_use_is_one_line_before_the_model_loads(tmp_path, exported):
    """uvicorn printed its own log lines and exited 3."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", exported.path, "--port", port, "--store", tmp_path / "store")
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output


def test_a_damaged_explanation_store_is_refused_at_start(tmp_path, exported):
    """It started and answered ready; every flag's explanation then failed for good."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "explanations.sqlite").write_text("not a database, nor anything else")
    result = run("serve", exported.path, "--port", 0, "--store", store)
    assert result.exit_code == 2, result.output
    assert "explanations.sqlite: not an explanation store" in result.output
    assert (store / "explanations.sqlite").read_text() == "not a database, nor anything else"
