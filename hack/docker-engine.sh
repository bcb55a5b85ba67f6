#!/usr/bin/env bash
# Prepares a Docker engine of its own for the compose tests and prints what they need, one
# variable a line, ready for `export`:
#
#   eval "$(hack/docker-engine.sh | sed 's/^/export /')"
#
#   LETSBE_TEST_DOCKER_CLI=/usr/bin/docker                    the docker CLI (Debian's, matching the engine)
#   LETSBE_TEST_DOCKER_HOST=unix://<dir>/engine/docker.sock   the engine (never /var/run/docker.sock)
#   LETSBE_TEST_DOCKER_CONFIG=<dir>/config                    DOCKER_CONFIG holding cli-plugins/docker-compose
#   LETSBE_TEST_DOCKER_IMAGE=letsbe-test/busybox:1            a local image (busybox httpd, wget)
#   LETSBE_TEST_DOCKER_IMAGE2=letsbe-test/busybox:2           the same, another image ID ("new version")
#
# With --cached it starts nothing and builds nothing: it prints the variables only when the engine
# already answers and the plugin and images are there (exit 1 otherwise), cheaply enough for
# `make test` to ask every time.
#
# - docker CLI and dockerd: Debian's docker.io (apt-get install, only when dockerd is missing),
#   plus busybox-static for the test image.
# - dockerd runs with its own data root, exec root (its own managed containerd), pidfile, unix
#   socket and an empty --config-file (so /etc/docker/daemon.json, if any, is not read), on the
#   vfs storage driver. It changes no firewall or sysctl: --iptables=false --ip6tables=false
#   --ip-forward=false --ip-masq=false, no default bridge (--bridge=none). Compose projects get
#   their own bridge networks from a private address pool; ports published on 127.0.0.1 are
#   served by docker's userland proxy, which needs no NAT rule. Containers reach nothing outside
#   (no masquerading), which the tests do not need.
# - docker compose v2: built from the Go module proxy. The module has exclude directives, so
#   `go install` refuses it; a copy of the module source is built with -mod=mod instead. Cold:
#   minutes on 2 idle cores, over an hour on a machine shared by many builds (it runs with
#   nice); cached: instant.
# - the images: `docker import` of a root file system holding only Debian's static busybox.
#
# Everything lives outside the repo, in $(go env GOCACHE)/letsbe-docker/ (LETSBE_DOCKER_DIR
# overrides it). The engine keeps running after the script exits and is shared by every test
# binary (each test uses its own compose project names); `hack/docker-engine.sh --stop` stops it.
# Only the variables go to stdout; progress goes to stderr. Safe to run concurrently (flock) and
# again (idempotent). Needs root to start dockerd.
set -euo pipefail

COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
GO="${GO:-go}"
IMAGE=letsbe-test/busybox

log() { echo "docker-engine: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$GO" >/dev/null || die "go not found on PATH"
root="${LETSBE_DOCKER_DIR:-$("$GO" env GOCACHE)/letsbe-docker}"
engine="$root/engine"
sock="$engine/docker.sock"
plugin="$root/compose-$COMPOSE_VERSION/docker-compose"
config="$root/config"

# The Debian CLI matches the Debian engine; another docker on PATH may be newer than the engine.
docker_cli() {
	if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker || true; fi
}
dk() { DOCKER_CONFIG="$config" DOCKER_HOST="unix://$sock" "$(docker_cli)" "$@"; }

answers() { [[ -S "$sock" ]] && [[ -n "$(docker_cli)" ]] && dk version --format '{{.Server.Version}}' >/dev/null 2>&1; }
images() { dk image inspect "$IMAGE:1" "$IMAGE:2" >/dev/null 2>&1; }
ready() { [[ -x "$plugin" && -x "$config/cli-plugins/docker-compose" ]] && answers && images; }
print() {
	echo "LETSBE_TEST_DOCKER_CLI=$(docker_cli)"
	echo "LETSBE_TEST_DOCKER_HOST=unix://$sock"
	echo "LETSBE_TEST_DOCKER_CONFIG=$config"
	echo "LETSBE_TEST_DOCKER_IMAGE=$IMAGE:1"
	echo "LETSBE_TEST_DOCKER_IMAGE2=$IMAGE:2"
}

case "${1:-}" in
--cached)
	ready || exit 1
	print
	exit 0
	;;
--stop)
	if [[ -f "$engine/docker.pid" ]]; then
		pid="$(cat "$engine/docker.pid")"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	fi
	exit 0
	;;
esac

mkdir -p "$root"
exec 9>"$root/.lock"
flock 9 # another run may be preparing the same engine; wait for it
if ready; then
	print
	exit 0
fi

# Debian's docker.io and busybox-static, installed only when missing.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
[[ -n "$(docker_cli)" ]] || need+=(docker.io)
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
	if [[ -x "$b" ]] && file -L "$b" 2>/dev/null | grep -q 'statically linked'; then busybox="$b"; break; fi
done
[[ -n "$busybox" ]] || need+=(busybox-static)
if ((${#need[@]} > 0)); then
	command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get to install them"
	[[ "$(id -u)" == 0 ]] || die "missing ${need[*]}; install them as root (apt-get install ${need[*]})"
	log "installing ${need[*]} with apt-get"
	apt=(apt-get -o DPkg::Lock::Timeout=600) # wait for another apt-get to finish
	"${apt[@]}" update -qq >&2 || die "apt-get update failed"
	# The package must not start the system's dockerd: policy-rc.d refuses it on containers,
	# and the tests start their own anyway.
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 ||
		die "apt-get install ${need[*]} failed"
	busybox=/bin/busybox
fi
command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"

# The compose plugin, built once per version.
if [[ ! -x "$plugin" ]]; then
	build="$(mktemp -d "$root/build.XXXXXX")"
	trap 'chmod -R u+w "$build" 2>/dev/null; rm -rf "$build"' EXIT
	log "building docker compose $COMPOSE_VERSION from the Go module proxy (minutes when cold)"
	(
		export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
		src="$(cd "$build" && "$GO" mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
		[[ -d "$src" ]] || { echo "no source for github.com/docker/compose/v2@$COMPOSE_VERSION" >&2; exit 1; }
		cp -r "$src" "$build/src"
		chmod -R u+w "$build/src"
		cd "$build/src"
		mkdir -p "$(dirname "$plugin")"
		nice -n 19 "$GO" build -trimpath -o "$plugin.tmp" \
			-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd
	) >&2 || die "building docker compose failed"
	mv -f "$plugin.tmp" "$plugin"
fi
mkdir -p "$config/cli-plugins"
ln -sfn "$plugin" "$config/cli-plugins/docker-compose"

# The engine.
if ! answers; then
	[[ "$(id -u)" == 0 ]] || die "dockerd needs root"
	mkdir -p "$engine"
	chmod 0700 "$engine"
	echo '{}' >"$engine/daemon.json"
	if [[ -f "$engine/docker.pid" ]]; then
		pid="$(cat "$engine/docker.pid")"
		if kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null; then
			log "dockerd $pid does not answer; stopping it"
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		fi
		rm -f "$engine/docker.pid"
	fi
	rm -f "$sock"
	log "starting dockerd on $sock"
	# 9>&- below: dockerd (and the containerd it starts) must not inherit the lock, or every
	# later run of this script would wait on it for as long as the engine lives.
	setsid nohup dockerd \
		--config-file "$engine/daemon.json" \
		--data-root "$engine/data" \
		--exec-root "$engine/exec" \
		--pidfile "$engine/docker.pid" \
		--host "unix://$sock" \
		--storage-driver vfs \
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
		--bridge=none \
		--userland-proxy=true \
		--default-address-pool base=10.213.0.0/16,size=24 \
		--log-level warn \
		>"$engine/dockerd.log" 2>&1 </dev/null 9>&- &
	for _ in $(seq 300); do
		answers && break
		sleep 0.2
	done
	answers || die "dockerd did not answer on $sock within 60s (log: $engine/dockerd.log): $(tail -5 "$engine/dockerd.log")"
fi

# The images: busybox and its applets, nothing else. Two imports, two image IDs.
if ! images; then
	rootfs="$(mktemp -d "$root/rootfs.XXXXXX")"
	trap 'rm -rf "$rootfs"' EXIT
	mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/www"
	cp "$busybox" "$rootfs/bin/busybox"
	for applet in $("$busybox" --list); do
		[[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
	echo 'root:x:0:' >"$rootfs/etc/group"
	for v in 1 2; do
		dk image inspect "$IMAGE:$v" >/dev/null 2>&1 && continue
		echo "$v" >"$rootfs/etc/letsbe-test-version"
		echo "version $v" >"$rootfs/www/index.html"
		tar -C "$rootfs" -c . | dk import \
			--change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' --change "LABEL letsbe.test.version=$v" \
			- "$IMAGE:$v" >/dev/null || die "docker import $IMAGE:$v failed"
	done
fi

ready || die "engine incomplete in $root"
log "ready: engine $(dk version --format '{{.Server.Version}}'), $(dk compose version --short 2>/dev/null || echo 'compose ?')"
print
