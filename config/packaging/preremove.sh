#!/bin/sh
# Before removal of letsbe-agent (not before an upgrade): stop and disable the service.
#   deb: $1 = remove, upgrade, deconfigure or failed-upgrade
#   rpm: $1 = 0 on removal, 1 on an upgrade
set -e
case "$1" in
	remove | 0) ;;
	*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl stop letsbe-agent.service || true
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable letsbe-agent.service >/dev/null 2>&1 || true
fi
exit 0
