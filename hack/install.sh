#!/usr/bin/env bash
# Install letsbe-agent on a plain server (systemd): the binary, the unit file and a template of
# the environment file. Run as root from a checkout, or through `sudo make install`.
#
#   sudo hack/install.sh                          # builds the binary with go, then installs
#   sudo BINARY=./letsbe-agent hack/install.sh    # installs a binary built elsewhere
#
# Installs (paths without DESTDIR):
#   $PREFIX/bin/letsbe-agent                      0755 (PREFIX default /usr/local)
#   /etc/systemd/system/letsbe-agent.service      0644 (ExecStart follows PREFIX)
#   /etc/letsbe-agent/agent.env                   0600, only if it does not exist yet: an
#                                                 existing one is never overwritten
# then runs `systemctl daemon-reload` when systemd is running (and DESTDIR is empty).
#
# DESTDIR stages everything under another root (packaging, tests); SYSCONFDIR (/etc) and
# UNITDIR (/etc/systemd/system) move the configuration. Nothing is started: edit agent.env,
# then `systemctl enable --now letsbe-agent`.
set -euo pipefail

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$SYSCONFDIR/systemd/system}
BINARY=${BINARY:-}

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit_src=$src/config/systemd/letsbe-agent.service
env_src=$src/config/systemd/agent.env

die() { echo "install.sh: $*" >&2; exit 1; }

for p in PREFIX SYSCONFDIR UNITDIR; do
	[[ ${!p} == /* ]] || die "$p must be an absolute path, not '${!p}'"
done
[[ -f $unit_src && -f $env_src ]] || die "run me from a letsbe-agent checkout (no $unit_src)"
if [[ -z $DESTDIR && $(id -u) != 0 ]]; then
	die "installing into / needs root (or set DESTDIR to stage the files elsewhere)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -z $BINARY ]]; then
	command -v go >/dev/null || die "no go on PATH: build the binary elsewhere and pass BINARY=path"
	version=$(git -C "$src" describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
	commit=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
	echo "Building letsbe-agent $version"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
		-o "$tmp/letsbe-agent" ./cmd/letsbe-agent)
	BINARY=$tmp/letsbe-agent
fi
[[ -f $BINARY && -x $BINARY ]] || die "BINARY '$BINARY' is not an executable file"

bin_dir=$DESTDIR$PREFIX/bin
unit_dir=$DESTDIR$UNITDIR
env_dir=$DESTDIR$SYSCONFDIR/letsbe-agent
env_file=$env_dir/agent.env

mkdir -p "$bin_dir" "$unit_dir"
install -m 0755 "$BINARY" "$bin_dir/letsbe-agent"
echo "Installed $bin_dir/letsbe-agent"

"$src/hack/render-unit.sh" "$PREFIX/bin" "$SYSCONFDIR" >"$tmp/letsbe-agent.service"
install -m 0644 "$tmp/letsbe-agent.service" "$unit_dir/letsbe-agent.service"
echo "Installed $unit_dir/letsbe-agent.service"

[[ -d $env_dir ]] || install -d -m 0700 "$env_dir"
if [[ -e $env_file ]]; then
	echo "Kept $env_file (exists; compare with $env_src for new settings)"
	if [[ $(stat -c %a "$env_file") != 600 ]]; then
		echo "install.sh: warning: $env_file has mode $(stat -c %a "$env_file"); it holds the token: chmod 600 it" >&2
	fi
else
	# Written under another name with umask 077, then moved into place without clobbering,
	# so the token file is never readable by others, not even for a moment.
	(umask 077 && cp "$env_src" "$env_file.new.$$")
	chmod 0600 "$env_file.new.$$"
	mv -n "$env_file.new.$$" "$env_file"
	rm -f "$env_file.new.$$"
	echo "Installed $env_file (template: set ORCHESTRATOR_URL and AGENT_TOKEN)"
fi

if [[ -z $DESTDIR && -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
	systemctl daemon-reload
	echo "Reloaded systemd"
fi

cat <<EOT
Next:
  edit $SYSCONFDIR/letsbe-agent/agent.env (ORCHESTRATOR_URL, AGENT_TOKEN)
  systemctl enable --now letsbe-agent
  journalctl -u letsbe-agent -f
EOT
