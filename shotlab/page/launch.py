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

It makes no outbound request: Streamlit looks up the machine's public address at
checkip.amazonaws.com, for its welcome banner and whenever a request comes from a foreign origin
(any web site the reviewer visits can cause one), blocking its event loop meanwhile. That lookup
is switched off (`stay_offline`), and Streamlit's banner with it: `shotlab explain app` prints
the page's address itself. A reader that stops reading (`... | head -1`) must not end or wedge
the server: Streamlit's banner went into the closed pipe and ended it with a BrokenPipeError,
and its "Stopping..." line made SIGTERM fail the same way, so the page ignored it. Standard
output drops what a closed pipe cannot take (`pipe_safe_stdout`).
"""

from __future__ import annotations

import io
import os
import sys
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
        "logger_hideWelcomeMessage": True,  # shotlab prints the address (see the docstring)
    }


def no_public_address() -> None:
    """What the page knows of the machine's public address: nothing (no lookup is made)."""
    return None


def stay_offline() -> None:
    """Switch off Streamlit's public-address lookup (an HTTP request to checkip.amazonaws.com,
    made for any foreign-origin request); Streamlit has no option for it. The origin check it
    serves then matches loopback, the machine's own addresses and the pinned allow-list only."""
    from streamlit import net_util

    net_util.get_external_ip = no_public_address


class PipeSafeWriter(io.RawIOBase):
    """File descriptor `fd` for writing; once its reader has gone, writes are dropped."""

    def __init__(self, fd: int):
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return os.write(self.fd, data)
        except BrokenPipeError:
            return len(data)


def pipe_safe_stdout() -> None:
    """Standard output as before, except that a closed pipe swallows what is written to it.
    Left alone when there is no file descriptor behind it (started with `>&-`: Python's
    sys.stdout is then None, and Streamlit writes nothing it needs)."""
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # None, or no descriptor
        return
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(PipeSafeWriter(fd)),
                                  encoding=sys.stdout.encoding, errors=sys.stdout.errors,
                                  line_buffering=True)


def run_page(model, *, host: str, port: int, max_upload_mb: int) -> None:
    """Serve `model` (a `page.model.PageModel`) until interrupted."""
    os.environ["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"  # before streamlit is imported
    from streamlit import config
    from streamlit.web import bootstrap

    from shotlab.page.model import serve_model

    flags = flag_options(host, port, max_upload_mb)
    config._main_script_path = str(SCRIPT)  # as `streamlit run` does, for its config lookup
    bootstrap.load_config_options(flag_options=flags)
    stay_offline()
    pipe_safe_stdout()
    serve_model(model)
    bootstrap.run(str(SCRIPT), False, [], flags)
