"""`shotlab explain app RUN_OR_BUNDLE`: the interactive explanation page (shotlab.page).

It joins explain, export's decision record and the runtime, so it is wired here in the CLI
layer and attached to the `explain` group by shotlab/cli.py (explain may not import the page).
Only click is imported here; the page imports Streamlit when it starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.runtime.signing import trusted_key_option

DEFAULT_PORT = 8501  # Streamlit's own


@click.command("app")
@click.argument("source", metavar="RUN_OR_BUNDLE", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The page has no login: anything but loopback lets "
                   "everyone who can reach this machine use it.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path),
              help="The explanations.sqlite `shotlab predict --explain` wrote, for \"Open "
                   "decision\" (opened read-only).")
@click.option("--max-upload-mb", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Larger uploads are refused.")
@trusted_key_option
def app_command(source, host, port, store, max_upload_mb, trusted_keys) -> None:
    """A local web page over RUN_OR_BUNDLE: upload an image (or pick a report sample), see the
    decision per policy category with its threshold and review band, the Grad-CAM (LIME, SHAP,
    IG on request) and their faithfulness; open a stored decision by id.

    A run folder means the bundle `shotlab export` wrote into it. Decisions are `shotlab
    predict`'s; nothing is stored. Ctrl-C stops the page.

    \b
    Examples:
      shotlab explain app ~/.shotlab/runs/20261122-vehicles-lite0/bundle
      shotlab explain app bundle.zip --store out/explanations.sqlite --port 8600
    """
    from shotlab.core.addresses import ensure_port_free, http_url, is_loopback
    from shotlab.page.launch import run_page
    from shotlab.page.model import open_model

    model = open_model(source, store=store, trusted_keys=trusted_keys)
    ensure_port_free(host, port, address_option="--host", default_port=DEFAULT_PORT)
    click.echo(f"Explanation page for {model.bundle.origin} on {http_url(host, port)} "
               f"(Ctrl-C stops it)")
    if not is_loopback(host):
        click.echo(f"WARNING: listening on {host}: the page has no login; anyone who can reach "
                   f"this address can use it", err=True)
    run_page(model, host=host, port=port, max_upload_mb=max_upload_mb)
