"""Running the playground: `seqlab serve RUN [RUN ...] [--host H] [--port P]`.

The runs are loaded first (a run that cannot be read is a one-line error before anything listens),
torch's thread count is set for one-token steps, the socket is bound (a port in use is a one-line
error), and uvicorn serves the app on it until Ctrl-C. The default host is 127.0.0.1: only this
machine can connect. Any other address is warned about in one line, since every machine that can
reach it may then read the runs' outputs and spend this machine's CPU.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence

from seqlab.errors import SeqlabError
from seqlab.serve.app import LOOPBACK_HOSTS, create_app
from seqlab.serve.runs import load_runs, model_parameters
from seqlab.training.threads import use_threads

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening, or a SeqlabError that says why not."""
    if not 0 <= port <= 65535:
        raise SeqlabError(f"--port {port}: expected a port number from 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise SeqlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def serve(run_dirs: Sequence[str], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the runs on host:port until interrupted."""
    import uvicorn

    loopback = is_loopback(host)
    if not loopback:
        log.warning("serving on %s: every machine that can reach this address can use the runs and this "
                    "machine's CPU (the default, 127.0.0.1, is this machine only)", host)
    runs = load_runs(run_dirs)
    use_threads(params=max(model_parameters(run) for run in runs), tokens=1)
    app = create_app(runs, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    log.info("seqlab serve: http://%s:%d/ (API: /docs)", shown, sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback", "listen", "serve"]
