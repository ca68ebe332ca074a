#!/usr/bin/env bash
# Install lotus-edge as a systemd service running as the unprivileged user "lotus".
#
#   sudo deploy/install.sh [--prefix /opt/lotus] [--package SPEC] [--no-venv] [--no-user] [--no-start]
#
# Creates the lotus user/group, a venv under PREFIX with the package, the unit, a tmpfiles.d rule
# that gives group lotus write access to the clock files at every boot, and /etc/lotus/config.yaml
# (kept if it exists). DESTDIR=/some/dir stages everything under that directory (packaging, tests);
# with DESTDIR set, nothing is started and no user is created.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=/opt/lotus
PACKAGE="${LOTUS_PACKAGE:-$(dirname "$HERE")}"
MAKE_VENV=1
MAKE_USER=1
START=1
DESTDIR="${DESTDIR:-}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --package) PACKAGE="$2"; shift 2 ;;
        --no-venv) MAKE_VENV=0; shift ;;
        --no-user) MAKE_USER=0; shift ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [[ -n "$DESTDIR" ]]; then MAKE_USER=0; START=0; fi
if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
    echo "install.sh: run as root (or set DESTDIR to stage the files)" >&2
    exit 1
fi

OWNER=()
if [[ $MAKE_USER -eq 1 ]]; then
    getent group lotus >/dev/null || groupadd --system lotus
    if ! id lotus >/dev/null 2>&1; then
        useradd --system --gid lotus --home-dir /var/lib/lotus --no-create-home --shell /usr/sbin/nologin lotus
    fi
    # GPU device nodes on Jetson belong to group video
    if getent group video >/dev/null; then usermod -a -G video lotus; fi
    OWNER=(-o root -g lotus)
fi

if [[ $MAKE_VENV -eq 1 ]]; then
    python3 -m venv "$DESTDIR$PREFIX/venv"
    "$DESTDIR$PREFIX/venv/bin/pip" install --upgrade pip >/dev/null
    "$DESTDIR$PREFIX/venv/bin/pip" install "$PACKAGE"
fi

install -d -m 0755 "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/tmpfiles.d"
sed "s#/opt/lotus#$PREFIX#g" "$HERE/lotus.service" > "$DESTDIR/etc/systemd/system/lotus.service"
chmod 0644 "$DESTDIR/etc/systemd/system/lotus.service"
install -m 0644 "$HERE/lotus.tmpfiles.conf" "$DESTDIR/etc/tmpfiles.d/lotus.conf"
install -d -m 0750 "${OWNER[@]}" "$DESTDIR/etc/lotus"
if [[ ! -e "$DESTDIR/etc/lotus/config.yaml" ]]; then
    install -m 0640 "${OWNER[@]}" "$HERE/config.example.yaml" "$DESTDIR/etc/lotus/config.yaml"
fi

if [[ $START -eq 1 ]]; then
    systemd-tmpfiles --create /etc/tmpfiles.d/lotus.conf || echo "warning: systemd-tmpfiles failed" >&2
    "$PREFIX/venv/bin/lotus" check-config /etc/lotus/config.yaml
    systemctl daemon-reload
    systemctl enable --now lotus.service
    echo "lotus installed: systemctl status lotus; journalctl -u lotus -f"
else
    echo "lotus staged under '${DESTDIR:-/}' (not started)"
fi
