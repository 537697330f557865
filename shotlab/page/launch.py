"""Start the page: Streamlit's server with shotlab's settings, in this process.

Safe by default (docs/explain.md, "The page"): it listens on 127.0.0.1 unless `host` says
otherwise, sends no usage statistics (Streamlit's `browser.gatherUsageStats`, off before Streamlit
is imported), opens no browser and makes no share link (Streamlit has none), refuses uploads over
`max_upload_mb`, keeps uploads and pictures in memory (nothing is written into the user's
folders), and does not watch or reload source files. On loopback it answers only requests
addressed to a loopback name (a DNS-rebinding page gets no websocket), and Streamlit's CORS and
XSRF protections, its agent API and the origins that may drive it from a frame are pinned, not
left to a config file. These are Streamlit command-line options, which outrank a user's
~/.streamlit/config.toml and a project's .streamlit/config.toml.
"""

from __future__ import annotations

import os
from pathlib import Path

SCRIPT = Path(__file__).with_name("script.py")


def flag_options(host: str, port: int, max_upload_mb: int) -> dict:
    """Streamlit config options, in the form of `streamlit run`'s flags (`section_option`)."""
    from shotlab.core.addresses import LOOPBACK_NAMES, is_loopback

    loopback = is_loopback(host)
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
        "client_showErrorDetails": "type" if loopback else "none",
        # Pinned: a config file must not turn these off.
        "server_enableCORS": True,
        "server_corsAllowedOrigins": [],
        "server_enableXsrfProtection": True,
        "server_enableAgentApi": False,
        "client_allowedOrigins": [],  # no page may drive it through postMessage from a frame
        # DNS rebinding: on loopback, only loopback names (any port); elsewhere the user's
        # address is not known here (the warning says the page is open to whoever reaches it).
        "server_allowedHosts": (list(dict.fromkeys([*LOOPBACK_NAMES, "[::1]", host])) if loopback
                                else ["*"]),
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
