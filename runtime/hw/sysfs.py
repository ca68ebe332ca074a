"""Root-relative sysfs access: cached cheap reads, checked writes with actionable errors.

Every backend reaches the kernel only through a :class:`SysfsIO`, built on a root directory
(``/`` on a board, a fake tree in tests). Hot-path reads use :class:`CachedReader`, which keeps
the file descriptor open and re-reads with ``pread(fd, n, 0)`` (sysfs regenerates an attribute
on every read at offset 0), so one sensor costs one syscall.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from lotus.core.errors import DeviceError

log = logging.getLogger(__name__)

PERMISSION_HINT = (
    "run lotus as root, or install the udev/tmpfiles rule from deploy/ that gives the lotus group "
    "write access to the cpufreq/devfreq/hwmon attributes"
)


def _write_hint(err: int) -> str:
    if err in (errno.EACCES, errno.EPERM):
        return PERMISSION_HINT
    if err == errno.EROFS:
        return "sysfs is mounted read-only (systemd ProtectKernelTunables=yes?): add ReadWritePaths= or " + (
            PERMISSION_HINT
        )
    if err == errno.ENOENT:
        return "the control does not exist on this kernel: check the board backend (`lotus boards --diagnose`)"
    if err == errno.EINVAL:
        return "the kernel rejected the value: outside the current min/max limits or the wrong governor"
    if err == errno.EBUSY:
        return "another agent holds this control (nvfancontrol, jetson_clocks, a second lotus?)"
    return "check `lotus boards --diagnose`"


class SysfsIO:
    """Maps system paths (``/sys/...``) under ``root`` and performs checked reads and writes."""

    def __init__(self, root: Path | str = Path("/")) -> None:
        self.root = Path(root)

    def path(self, system_path: str | Path) -> Path:
        """The real path of ``system_path`` (absolute, as on a board) under the root."""
        return self.root / str(system_path).lstrip("/")

    def rel(self, path: Path) -> str:
        """The system path of a real ``path`` (inverse of :meth:`path`), for messages and state files."""
        try:
            return "/" + str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def glob(self, pattern: str) -> list[Path]:
        """Sorted (natural order on trailing numbers) matches of a system glob under the root."""
        return sorted(self.root.glob(pattern.lstrip("/")), key=natural_key)

    def read_text(self, path: Path) -> str | None:
        """Stripped content of ``path``, or None when it is missing or unreadable (discovery use)."""
        try:
            with open(path, "rb") as fh:
                return fh.read(65536).decode(errors="replace").strip()
        except OSError:
            return None

    def read_int(self, path: Path) -> int | None:
        """Integer content of ``path``, or None when missing, unreadable or not an integer."""
        text = self.read_text(path)
        if text is None:
            return None
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            log.warning("ignoring %s: not an integer (%r)", path, text[:40])
            return None

    def write(self, path: Path, value: str | int) -> None:
        """Write ``value`` to ``path``; failures raise DeviceError naming the path and the fix."""
        data = f"{value}\n".encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:
            raise self._error(path, value, exc) from exc
        try:
            os.write(fd, data)
        except OSError as exc:
            raise self._error(path, value, exc) from exc
        finally:
            os.close(fd)
        log.debug("wrote %s <- %s", path, value)

    def _error(self, path: Path, value: str | int, exc: OSError) -> DeviceError:
        err = exc.errno or 0
        name = errno.errorcode.get(err, str(err))
        return DeviceError(f"cannot write {value!r} to {path} ({name}: {exc.strerror}): {_write_hint(err)}")

    def reader(self, path: Path) -> CachedReader:
        return CachedReader(path)


class CachedReader:
    """One sysfs attribute kept open. Failures give None and one warning until a read succeeds."""

    __slots__ = ("path", "_fd", "_warned")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._warned = False

    def _raw(self) -> str | None:
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            data = os.pread(self._fd, 256, 0)
        except OSError as exc:  # ENODEV/EIO from a vanished or failing sensor, or a missing file
            self.close()
            self._warn(f"unreadable ({exc.strerror})")
            return None
        return data.decode(errors="replace").strip()

    def read(self) -> str | None:
        text = self._raw()
        if text is not None:
            self._warned = False
        return text

    def read_int(self) -> int | None:
        text = self._raw()
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            self._warn(f"not an integer ({text[:40]!r})")
            return None
        self._warned = False
        return value

    def _warn(self, what: str) -> None:
        if not self._warned:
            log.warning("sensor %s %s; reporting it as missing", self.path, what)
            self._warned = True

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __del__(self) -> None:
        self.close()


def natural_key(path: Path) -> tuple[str, int]:
    """Sort key so ``thermal_zone10`` comes after ``thermal_zone9``."""
    name = path.name
    digits = len(name) - len(name.rstrip("0123456789"))
    if digits:
        return (str(path.parent) + "/" + name[:-digits], int(name[-digits:]))
    return (str(path), -1)


def parse_int_list(text: str | None) -> tuple[int, ...]:
    """Sorted unique integers of a whitespace-separated list (frequency tables); bad tokens skipped."""
    if not text:
        return ()
    values = set()
    for token in text.split():
        try:
            values.add(int(token))
        except ValueError:
            continue
    return tuple(sorted(values))
