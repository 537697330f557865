"""`serve --trusted-key`: the service, the place a moderation team most needs to know whose
model decides, required signatures only through $SHOTLAB_TRUSTED_KEYS; predict and the page
had the option."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.runtime.bundle import MANIFEST_FILE
from shotlab.runtime.signing import generate_keypair, sign

pytestmark = [pytest.mark.fiftyone, pytest.mark.slow]


def test_serve_refuses_an_unsigned_bundle_and_serves_a_signed_one(bundle_copy, images,
                                                                   start_server, tmp_path):
    import json

    private, public = generate_keypair(tmp_path / "keys" / "team")
    refused = CliRunner().invoke(cli, ["serve", str(bundle_copy), "--port", "0", "--store",
                                       str(tmp_path / "store"), "--trusted-key", str(public)])
    assert refused.exit_code == 2, refused.output
    assert "the bundle is not signed" in refused.output
    assert not (tmp_path / "store").exists()  # refused before anything was written
    sign(bundle_copy, json.loads((bundle_copy / MANIFEST_FILE).read_text()), private)
    server = start_server(bundle_copy, "--trusted-key", public)
    answer = httpx.post(server.url + "/v1/moderate", content=images[0].read_bytes(),
                        headers={"Content-Type": "image/png"}, timeout=60)
    assert answer.status_code == 200 and answer.json()["scores"]
