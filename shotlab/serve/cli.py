"""`shotlab serve BUNDLE`: the moderation service (docs/serve.md).

Only click is imported here; the service (FastAPI, uvicorn, ONNX Runtime) is imported when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_ITEMS = 64  # a batch request's images: a page of uploads; more belongs to `shotlab predict`


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback unless you say otherwise.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most requests grouped into one model run (1: no batching).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Longest a batch waits for requests still being decoded.")
@click.option("--queue-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Items waiting for the model before new ones get 429.")
@click.option("--timeout-ms", type=click.FloatRange(min=1), default=10_000, show_default=True,
              help="A request without a decision by then gets 503.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=20.0,
              show_default=True, help="Largest request body (413 above it).")
@click.option("--max-items", type=click.IntRange(min=1), default=None,
              help=f"Most images in one /v1/moderate/batch request [default: {MAX_ITEMS}, or "
                   f"--queue-size if smaller].")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Pixel bomb limit per image [default: PIL's, about 89 megapixels].")
@click.option("--store", "store", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for decisions.sqlite and explanations.sqlite "
                   "[default: WORKSPACE/serve].")
@click.option("--no-cache", is_flag=True,
              help="Decide every request anew (the same bytes otherwise get the stored decision).")
@click.option("--no-explain", is_flag=True,
              help="Queue no tier-1 Grad-CAM for flagged and review decisions.")
@click.option("--fp16", is_flag=True, help="Run the bundle's FP16 ONNX model.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime threads [default: every core].")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Require 'Authorization: Bearer KEY' with the key in this file "
                   "[or env SHOTLAB_API_KEY].")
@click.option("--access-log", is_flag=True, help="Log one line per request.")
def serve_command(bundle, host, port, max_batch, max_wait_ms, queue_size, timeout_ms,
                  max_body_mb, max_items, max_pixels, store, no_cache, no_explain, fp16,
                  threads, api_key_file, access_log) -> None:
    """Serve BUNDLE over HTTP: POST /v1/moderate, /v1/moderate/batch, GET /v1/decisions/ID,
    /v2/health/live|ready, /metrics; the OpenAPI page at /docs.

    Concurrent requests share one model run (micro-batching); every decision is written to the
    store (SQLite, WAL) before it is answered; flagged and review decisions get a Grad-CAM in
    the background.

    \b
    Examples:
      shotlab serve runs/.../bundle
      curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg localhost:8080/v1/moderate
      shotlab serve bundle.zip --host 0.0.0.0 --api-key-file key.txt
    """
    from shotlab.core.workspace import current
    from shotlab.serve.app import serve
    from shotlab.serve.service import ServeOptions, read_api_key

    if max_items is None:
        max_items = min(MAX_ITEMS, queue_size)
    elif max_items > queue_size:
        raise click.BadParameter(f"{max_items} is more than --queue-size {queue_size}: a batch "
                                 f"that large could never be queued; lower --max-items or "
                                 f"raise --queue-size", param_hint="--max-items")
    api_key = read_api_key(api_key_file)
    if host not in LOOPBACK and not api_key:
        click.echo(f"WARNING: listening on {host} without an API key: anyone who can reach "
                   f"this port can use the service (--api-key-file)", err=True)
    options = ServeOptions(
        bundle=bundle, store=store or current().home / "serve", host=host, port=port,
        max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
        timeout_ms=timeout_ms, max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_items=max_items, max_pixels=max_pixels, cache=not no_cache,
        explain=not no_explain, fp16=fp16, threads=threads, api_key=api_key,
        access_log=access_log)
    serve(options)


COMMANDS.append(serve_command)
