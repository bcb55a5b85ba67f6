#!/usr/bin/env bash
# Print the systemd unit (config/systemd/letsbe-agent.service) for a binary directory and a
# configuration directory: the one unit every install path uses (hack/install.sh: /usr/local/bin,
# the packages: /usr/bin), so there is never a second copy to keep in step.
#
#   hack/render-unit.sh /usr/bin /etc >letsbe-agent.service
set -euo pipefail
[[ $# == 2 && $1 == /* && $2 == /* ]] || { echo "usage: $0 BINDIR SYSCONFDIR (absolute paths)" >&2; exit 2; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sed -e "s|/usr/local/bin/letsbe-agent|$1/letsbe-agent|g" \
	-e "s|/etc/letsbe-agent/agent.env|$2/letsbe-agent/agent.env|g" \
	"$src/config/systemd/letsbe-agent.service"
