"""`shotlab serve BUNDLE`: the moderation service (docs/serve.md).

Only click is imported here; the service (FastAPI, uvicorn, ONNX Runtime) is imported when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.export.runtime_choice import runtime_name, runtime_options
from shotlab.runtime.signing import trusted_key_option

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module
RAY_REPLICAS = 2
# One ONNX Runtime thread per replica: replicas, not threads inside one, use the cores; more
# threads per replica would make the replicas fight over the same cores.
RAY_THREADS = 1
MAX_ITEMS = 64  # a batch request's images: a page of uploads; more belongs to `shotlab predict`
# One decode at a time per replica: each reserves one CPU, as it runs one ONNX Runtime thread.
RAY_DECODE_SLOTS = 1


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback unless you say otherwise.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most items (images, comments, posts, clips) in one model run "
                   "(1: no batching).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Longest a batch waits for requests still being decoded.")
@click.option("--queue-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Items waiting for the model before new ones get 429.")
@click.option("--timeout-ms", type=click.FloatRange(min=1), default=10_000, show_default=True,
              help="A request without a decision this long after it arrived (decoding and "
                   "waiting included) gets 503.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=20.0,
              show_default=True, help="Largest request body (413 above it).")
@click.option("--max-items", type=click.IntRange(min=1), default=None,
              help=f"Most items (images, clips, comments, posts) in one /v1/moderate/batch "
                   f"request [default: {MAX_ITEMS}, or "
                   f"--queue-size if smaller].")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Pixel bomb limit per image and per clip frame [default: PIL's, about 89 "
                   "megapixels; 33 for a clip frame].")
@click.option("--max-request-pixels", type=click.IntRange(min=1), default=500_000_000,
              show_default=True,
              help="Pixels the images of one request may have together, read from their "
                   "headers before decoding (413 above it).")
@click.option("--max-clip-frames", type=click.IntRange(min=2), default=None,
              help="Most frames a clip may have (422 above it, before decoding) "
                   "[default: 18,000: 5 minutes at 60 fps].")
@click.option("--decode-slots", type=click.IntRange(min=1), default=None,
              help="Bodies decoded at once across the server; the rest wait their turn "
                   "[default: one per core; 1 per replica with --ray].")
@click.option("--store", "store", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for decisions.sqlite and explanations.sqlite "
                   "[default: WORKSPACE/serve].")
@click.option("--no-cache", is_flag=True,
              help="Decide every request anew (the same bytes otherwise get the stored decision).")
@click.option("--no-explain", is_flag=True,
              help="Queue no tier-1 Grad-CAM for flagged and review decisions.")
@runtime_options
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime threads [default: every core].")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Require 'Authorization: Bearer KEY' with the key in this file "
                   "[or env SHOTLAB_API_KEY].")
@click.option("--access-log", is_flag=True, help="Log one line per request.")
@click.option("--decision-store", type=click.Choice(["sqlite", "mongodb"]), default="sqlite",
              show_default=True,
              help="Where decisions go: SQLite in --store (one machine), or MongoDB (the "
                   "workspace's server, or --database-uri: replicas on several machines).")
@click.option("--ray", "on_ray", is_flag=True,
              help="Serve on Ray Serve: --replicas copies of the service behind Ray's proxy.")
@click.option("--address", help="With --ray: the Ray cluster to join (e.g. HEAD:6379) "
                                "[default: start a local Ray on 127.0.0.1].")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="With --ray: replicas, one CPU and one ONNX Runtime thread each [default: 2].")
@trusted_key_option
def serve_command(bundle, host, port, max_batch, max_wait_ms, queue_size, timeout_ms,
                  max_body_mb, max_items, max_pixels, max_request_pixels, max_clip_frames,
                  decode_slots, store, no_cache, no_explain, fp16,
                  runtime, threads, api_key_file, access_log, decision_store, on_ray, address,
                  replicas, trusted_keys) -> None:
    """Serve BUNDLE over HTTP: POST /v1/moderate, /v1/moderate/batch, GET /v1/decisions/ID,
    /v2/health/live|ready, /metrics; the OpenAPI description at /openapi.json.

    Concurrent requests share one model run (micro-batching); every decision is written to the
    store (SQLite, WAL) before it is answered; flagged and review decisions get a Grad-CAM in
    the background.

    \b
    Examples:
      shotlab serve runs/.../bundle
      curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg localhost:8080/v1/moderate
      shotlab serve bundle.zip --host 0.0.0.0 --api-key-file key.txt --trusted-key team.pub
      shotlab serve runs/.../bundle --ray --replicas 2
      shotlab --database-uri mongodb://db:27017 serve B --ray --address HEAD:6379 \
          --decision-store mongodb
    """
    from shotlab.core.addresses import is_loopback
    from shotlab.core.workspace import current
    from shotlab.serve.service import ServeOptions, read_api_key

    for name, given in (("--address", address), ("--replicas", replicas)):
        if given is not None and not on_ray:
            raise click.BadParameter(f"{name} applies to Ray Serve only; add --ray",
                                     param_hint=name)
    if on_ray and port == 0:  # Ray Serve's proxy picks one and does not say which
        raise click.BadParameter("0 (any free port) cannot be used with --ray: Ray Serve does "
                                 "not report the port it picks; give one, e.g. --port 8080",
                                 param_hint="--port")

    if max_items is None:
        max_items = min(MAX_ITEMS, queue_size)
    elif max_items > queue_size:
        raise click.BadParameter(f"{max_items} is more than --queue-size {queue_size}: a batch "
                                 f"that large could never be queued; lower --max-items or "
                                 f"raise --queue-size", param_hint="--max-items")
    if max_pixels and max_pixels > max_request_pixels:
        raise click.BadParameter(f"{max_pixels:,} is more than --max-request-pixels "
                                 f"{max_request_pixels:,}: an image that large could never be "
                                 f"sent; lower --max-pixels or raise --max-request-pixels",
                                 param_hint="--max-pixels")
    api_key = read_api_key(api_key_file)
    if not is_loopback(host) and not api_key:
        click.echo(f"WARNING: listening on {host} without an API key: anyone who can reach "
                   f"this port can use the service (--api-key-file)", err=True)
    options = ServeOptions(
        bundle=bundle, store=store or current().home / "serve", host=host, port=port,
        max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
        timeout_ms=timeout_ms, max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_items=max_items, max_pixels=max_pixels, max_request_pixels=max_request_pixels,
        max_clip_frames=max_clip_frames,
        decode_slots=decode_slots or (RAY_DECODE_SLOTS if on_ray else None), cache=not no_cache,
        explain=not no_explain, runtime=runtime_name(runtime, fp16),
        threads=threads or (RAY_THREADS if on_ray else None), api_key=api_key,
        access_log=access_log, trusted_keys=tuple(map(str, trusted_keys)) or None,
        database_uri=shared_store_uri(address if on_ray else None)
        if decision_store == "mongodb" else None)
    if on_ray:
        from shotlab.serve.ray_serve import run_on_ray

        return run_on_ray(options, address=address, replicas=replicas or RAY_REPLICAS)
    from shotlab.core.addresses import ensure_port_free
    from shotlab.serve.app import serve

    if port:  # 0: any free port, never busy
        ensure_port_free(host, port, address_option="--host", default_port=8080)
    serve(options)


def shared_store_uri(address: str | None) -> str:
    """The MongoDB the decisions go to: --database-uri, else the workspace's own server, which
    listens on a Unix socket of this machine: refused for replicas on a cluster elsewhere
    (`address` another machine's), which cannot reach it."""
    from shotlab.core import database
    from shotlab.core.addresses import is_loopback
    from shotlab.core.cluster import address_host
    from shotlab.core.workspace import current

    workspace = current()
    host = address_host(address)
    if workspace.database_uri is None and host and not is_loopback(host):
        raise click.BadParameter(f"the workspace's own MongoDB listens on a socket of this "
                                 f"machine, which replicas on {address} cannot reach; give "
                                 f"a server every node reaches: shotlab --database-uri "
                                 f"mongodb://HOST:27017 serve ...", param_hint="--decision-store")
    return database.with_timeouts(workspace.database_uri or database.connect(workspace))


COMMANDS.append(serve_command)
