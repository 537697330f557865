"""Start the page: Streamlit's server with shotlab's settings, in this process.

Safe by default (docs/explain.md, "The page"): it listens on 127.0.0.1 unless `host` says
otherwise, sends no usage statistics (Streamlit's `browser.gatherUsageStats`, off before Streamlit
is imported), opens no browser and makes no share link (Streamlit has none), refuses uploads over
`max_upload_mb`, keeps uploads and pictures in memory (nothing is written into the user's
folders), and does not watch or reload source files. These are Streamlit command-line options,
which outrank a user's ~/.streamlit/config.toml.
"""

from __future__ import annotations

import os
from pathlib import Path

SCRIPT = Path(__file__).with_name("script.py")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def flag_options(host: str, port: int, max_upload_mb: int) -> dict:
    """Streamlit config options, in the form of `streamlit run`'s flags (`section_option`)."""
    return {
        "server_address": host,
        "server_port": port,
        "server_headless": True,  # no browser opened, no e-mail prompt, nothing in ~/.streamlit
        "server_maxUploadSize": max_upload_mb,
        "server_fileWatcherType": "none",
        "server_runOnSave": False,
        "server_enableStaticServing": False,
        "browser_gatherUsageStats": False,
        "global_developmentMode": False,
        "client_toolbarMode": "minimal",
        "client_showErrorDetails": "type" if host in LOOPBACK else "none",
        "theme_base": "light",
    }


def run_page(model, *, host: str, port: int, max_upload_mb: int) -> None:
    """Serve `model` (a `page.model.PageModel`) until interrupted."""
    os.environ["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"  # before streamlit is imported
    from streamlit import config
    from streamlit.web import bootstrap

    from shotlab.page.model import serve_model

    flags = flag_options(host, port, max_upload_mb)
    config._main_script_path = str(SCRIPT)  # as `streamlit run` does, for its config lookup
    bootstrap.load_config_options(flag_options=flags)
    serve_model(model)
    bootstrap.run(str(SCRIPT), False, [], flags)
