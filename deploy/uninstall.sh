#!/usr/bin/env bash
# Remove the lotus service: stop it (ExecStopPost restores the clocks), then delete the unit,
# the tmpfiles rule and the venv. Keeps /etc/lotus and /var/lib/lotus unless --purge.
#
#   sudo deploy/uninstall.sh [--prefix /opt/lotus] [--purge]
set -euo pipefail

PREFIX=/opt/lotus
PURGE=0
DESTDIR="${DESTDIR:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
    echo "uninstall.sh: run as root" >&2
    exit 1
fi

if [[ -z "$DESTDIR" ]] && command -v systemctl >/dev/null; then
    systemctl disable --now lotus.service 2>/dev/null || true
    # belt and braces: the state file exists only if the clocks were not restored
    if [[ -e /var/lib/lotus/clock-state.json && -x "$PREFIX/venv/bin/lotus" ]]; then
        "$PREFIX/venv/bin/lotus" restore-clocks /var/lib/lotus/clock-state.json || true
    fi
fi
rm -f "$DESTDIR/etc/systemd/system/lotus.service" "$DESTDIR/etc/tmpfiles.d/lotus.conf"
rm -rf "${DESTDIR}${PREFIX:?}/venv"
if [[ $PURGE -eq 1 ]]; then
    rm -rf "$DESTDIR/etc/lotus" "$DESTDIR/var/lib/lotus" "$DESTDIR/var/cache/lotus"
    if [[ -z "$DESTDIR" ]]; then
        id lotus >/dev/null 2>&1 && userdel lotus || true
        getent group lotus >/dev/null && groupdel lotus || true
    fi
fi
if [[ -z "$DESTDIR" ]] && command -v systemctl >/dev/null; then systemctl daemon-reload || true; fi
echo "lotus removed"
