#!/bin/sh
# After removal of letsbe-agent.
#   deb: $1 = remove, purge, upgrade, ...; purge also deletes the state directory (the agent's
#        identity and journal: the server registers as a new agent if installed again) and
#        /etc/letsbe-agent
#   rpm: $1 = 0 on removal, 1 on an upgrade; the state directory is kept
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/letsbe-agent /etc/letsbe-agent
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
