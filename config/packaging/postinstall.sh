#!/bin/sh
# After install or upgrade of letsbe-agent.
#   deb: $1 = configure, $2 = the version upgraded from (empty on a first install)
#   rpm: $1 = 1 on a first install, 2 or more on an upgrade
# A first install starts nothing (agent.env has no orchestrator yet); an upgrade restarts a
# running agent (it drains first) so that the new binary runs.
set -e
upgrade=
case "$1" in
	configure) [ -z "$2" ] || upgrade=1 ;;
	[0-9]*) [ "$1" -lt 2 ] || upgrade=1 ;;
	*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -n "$upgrade" ]; then
		systemctl try-restart letsbe-agent.service || true
	fi
fi
if [ -z "$upgrade" ]; then
	cat <<'EOT'
letsbe-agent is installed. Next:
  edit /etc/letsbe-agent/agent.env (ORCHESTRATOR_URL, AGENT_TOKEN)
  sh -c 'set -a; . /etc/letsbe-agent/agent.env; exec letsbe-agent doctor'
  systemctl enable --now letsbe-agent
EOT
fi
exit 0
