"""systemd ``sd_notify`` without a dependency: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.

Writes datagrams to ``$NOTIFY_SOCKET`` (an AF_UNIX path, or an abstract name starting with
``@``). Without the variable (not under systemd) every call is a no-op. The watchdog interval
comes from ``$WATCHDOG_USEC``; :meth:`Notifier.watchdog_due` says when half of it has passed.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET")
        self.address = ("\0" + addr[1:]) if addr and addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        ours = pid is None or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and ours else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines; False when not under systemd or the send failed."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
            return True
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping: restoring clocks")

    def watchdog_due(self) -> bool:
        return self.watchdog_s is not None and time.monotonic() - self._last_ping >= self.watchdog_s / 2

    def ping(self) -> bool:
        self._last_ping = time.monotonic()
        return self.notify("WATCHDOG=1")
