"""nvpmodel: the current power mode from ``/var/lib/nvpmodel/status``, named via nvpmodel.conf.

Read only: switching modes needs the root ``nvpmodel`` binary and resets clock limits, so the
daemon reports the mode and leaves changing it to the operator.
"""

from __future__ import annotations

import re

from lotus.runtime.hw.base import NvpMode
from lotus.runtime.hw.sysfs import SysfsIO

STATUS_FILE = "/var/lib/nvpmodel/status"
CONF_FILES = ("/etc/nvpmodel.conf",)
_MODE_RE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", re.I)


class NvpModel:
    def __init__(self, io: SysfsIO) -> None:
        self.io = io
        self.status_path = io.path(STATUS_FILE)
        self._names: dict[int, str] | None = None

    def available(self) -> bool:
        return self.status_path.is_file()

    def names(self) -> dict[int, str]:
        """Mode id -> name from nvpmodel.conf (read once; empty when there is no conf)."""
        if self._names is None:
            self._names = {}
            for conf in CONF_FILES:
                text = self.io.read_text(self.io.path(conf)) or ""
                self._names.update({int(i): n for i, n in _MODE_RE.findall(text)})
        return self._names

    def read(self) -> NvpMode | None:
        """The current mode, or None when nvpmodel is absent; unparsable fields are None."""
        text = self.io.read_text(self.status_path)
        if text is None:
            return None
        fields = dict(part.split(":", 1) for part in text.split() if ":" in part)
        try:
            mode_id: int | None = int(fields.get("pmode", ""))
        except ValueError:
            mode_id = None
        name = self.names().get(mode_id) if mode_id is not None else None
        return NvpMode(mode_id, name, fields.get("fmode"))
