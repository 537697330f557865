"""Signed bundles: the defence the digest alone cannot give against someone who rewrites the whole
folder (recomputes the digest and every hash) but does not hold the private key."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.runtime.bundle import MANIFEST_FILE, digest, load_bundle, zip_folder
from shotlab.runtime.signing import SIGNATURE_FILE, TRUSTED_KEYS_ENV, generate_keypair, sign
from tests.train.trainsets import write_colour_tree


@pytest.fixture
def keys(tmp_path):
    return generate_keypair(tmp_path / "keys" / "team")


def manifest_of(bundle) -> dict:
    return json.loads((bundle / MANIFEST_FILE).read_text())


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    result = CliRunner().invoke(cli, ["keygen", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    again = CliRunner().invoke(cli, ["keygen", str(tmp_path / "k")])
    assert again.exit_code == 2 and "already exists" in again.output


def test_a_signed_bundle_loads_with_its_key_and_an_unsigned_one_is_refused(bundle_copy, keys):
    private, public = keys
    with pytest.raises(InputError, match="not signed"):
        load_bundle(bundle_copy, trusted_keys=[public])
    sign(bundle_copy, manifest_of(bundle_copy), private)
    assert load_bundle(bundle_copy, trusted_keys=[public]).classes
    assert load_bundle(bundle_copy).classes  # no trusted keys given: the digest still holds


def test_an_unsigned_zip_bundle_is_named_by_its_zip(bundle_copy, keys, tmp_path):
    """The message named the temporary folder the zip was unpacked into (gone at exit)."""
    archive = zip_folder(bundle_copy, tmp_path / "unsigned.zip")
    with pytest.raises(InputError, match=r"unsigned\.zip: the bundle is not signed") as refused:
        load_bundle(archive, trusted_keys=[keys[1]])
    assert "shotlab-bundle-" not in str(refused.value)


def test_a_rewritten_bundle_with_a_valid_digest_fails_the_signature(bundle_copy, keys):
    private, public = keys
    sign(bundle_copy, manifest_of(bundle_copy), private)
    manifest = manifest_of(bundle_copy)
    manifest["policy"]["thresholds"]["red"]["threshold"] = 0.99
    manifest["digest"] = digest(manifest)  # the attacker recomputes what the digest covers
    (bundle_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert load_bundle(bundle_copy).classes  # the digest alone cannot tell
    with pytest.raises(InputError, match="does not verify against any trusted key"):
        load_bundle(bundle_copy, trusted_keys=[public])


def test_a_bundle_signed_by_another_key_is_refused(bundle_copy, keys, tmp_path):
    other_private, _ = generate_keypair(tmp_path / "other")
    sign(bundle_copy, manifest_of(bundle_copy), other_private)
    with pytest.raises(InputError, match="does not verify"):
        load_bundle(bundle_copy, trusted_keys=[keys[1]])


def test_trusted_keys_from_the_environment_guard_predict(bundle_copy, keys, tmp_path,
                                                         monkeypatch):
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=4)
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys[1]))
    refused = CliRunner().invoke(cli, ["predict", str(bundle_copy), str(images),
                                       "--out", str(tmp_path / "d.jsonl")])
    assert refused.exit_code == 2 and "not signed" in refused.output
    sign(bundle_copy, manifest_of(bundle_copy), keys[0])
    done = CliRunner().invoke(cli, ["predict", str(bundle_copy), str(images),
                                    "--out", str(tmp_path / "d.jsonl")])
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("value", [":", " ", "::"])
def test_a_trusted_keys_variable_naming_no_file_is_refused(bundle_copy, value, monkeypatch):
    """':' split into no path and switched the signature check off: an unsigned bundle ran."""
    monkeypatch.setenv(TRUSTED_KEYS_ENV, value)
    with pytest.raises(InputError, match="names no key file"):
        load_bundle(bundle_copy)
    monkeypatch.setenv(TRUSTED_KEYS_ENV, "")  # empty, as unset: no keys asked for
    assert load_bundle(bundle_copy).classes

def test_export_signs_and_predict_checks_the_signature(trained_run, keys, tmp_path):
    private, public = keys
    out = tmp_path / "signed"
    result = CliRunner().invoke(cli, ["export", str(trained_run), "--out", str(out),
                                      "--sign-key", str(private), "--no-explain", "--zip"])
    assert result.exit_code == 0, result.output
    assert (out / SIGNATURE_FILE).is_file()
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=5)
    for bundle in (out, out.with_name("signed.zip")):
        done = CliRunner().invoke(cli, ["predict", str(bundle), str(images), "--trusted-key",
                                        str(public), "--out", str(tmp_path / "d.jsonl")])
        assert done.exit_code == 0, done.output


def test_export_refuses_an_unusable_key_before_any_work(trained_run, tmp_path):
    (tmp_path / "bad.key").write_text("not a key")
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, ["export", str(trained_run), "--out", str(out),
                                      "--sign-key", str(tmp_path / "bad.key")])
    assert result.exit_code == 2 and "not a readable private key" in result.output
    assert not out.exists()


def test_a_missing_trusted_key_file_is_named_whether_the_bundle_is_signed_or_not(bundle_copy,
                                                                                  tmp_path):
    """With an unsigned bundle, a trusted key file that does not exist was reported as "the
    bundle is not signed": the user looked for the wrong fault."""
    missing = tmp_path / "nowhere.pub"
    with pytest.raises(InputError, match="nowhere.pub"):
        load_bundle(bundle_copy, trusted_keys=[missing])


def test_explain_takes_trusted_keys_too(bundle_copy, trained_run, keys, tmp_path):
    """`explain --trusted-key`: an unsigned bundle is refused, a signed one explained; a run
    (never signed) is refused rather than explained unchecked."""
    private, public = keys
    (image,) = sorted(write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=6)
                      .rglob("*.png"))[:1]
    command = ["explain", str(bundle_copy), str(image), "--method", "gradcam", "--json",
               "--trusted-key", str(public)]
    refused = CliRunner().invoke(cli, command)
    assert refused.exit_code == 2 and "not signed" in refused.output
    sign(bundle_copy, manifest_of(bundle_copy), private)
    done = CliRunner().invoke(cli, command)
    assert done.exit_code == 0, done.output
    run = CliRunner().invoke(cli, [*command[:1], str(trained_run), *command[2:]])
    assert run.exit_code == 2 and "a training run, which is not signed" in run.output
