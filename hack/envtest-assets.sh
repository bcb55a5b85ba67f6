#!/usr/bin/env bash
# Prepares the binaries controller-runtime's envtest runs (etcd, kube-apiserver, kubectl) without
# the usual download, which our machines cannot reach, and prints the directory holding them:
#
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
#
# With --cached it prepares nothing: it prints the directory only when everything is already
# there (and exits 1 otherwise), cheaply enough for `make test` to ask every time.
#
# - etcd: Debian's etcd-server package (apt-get install, only when no etcd is on PATH).
# - kube-apiserver: built from the Go module proxy. k8s.io/kubernetes replaces its staging modules
#   with ./staging/... directories, so `go install` refuses it; a throwaway module (outside the
#   repo) requires it and replaces every staging module with its published v0.x version instead.
#   Cold: about 3.5 min and 1.8 GB of memory on 2 cores (run with nice); cached: instant.
# - kubectl: /usr/bin/kubectl (or whatever is on PATH) when present; envtest does not need it.
#
# The binaries are cached outside the repo, in $(go env GOCACHE)/letsbe-envtest/<version>/
# (LETSBE_ENVTEST_DIR overrides the parent directory). Only the directory goes to stdout; progress
# goes to stderr. Safe to run concurrently (flock) and again (idempotent).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
STAGING_VERSION="v0.${K8S_VERSION#1.}" # 1.34.4 -> v0.34.4
GO="${GO:-go}"

log() { echo "envtest-assets: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$GO" >/dev/null || die "go not found on PATH"
root="${LETSBE_ENVTEST_DIR:-$("$GO" env GOCACHE)/letsbe-envtest}"
dir="$root/$K8S_VERSION"

ready() { [[ -x "$dir/etcd" && -x "$dir/kube-apiserver" ]]; }
if ready; then
	echo "$dir"
	exit 0
fi
if [[ "${1:-}" == --cached ]]; then
	exit 1
fi

mkdir -p "$dir"
exec 9>"$root/.lock"
flock 9 # another run may be preparing the same assets; wait for it
if ready; then
	echo "$dir"
	exit 0
fi

# etcd from Debian, installed only when missing.
etcd="$(command -v etcd || true)"
if [[ -z "$etcd" ]]; then
	command -v apt-get >/dev/null || die "etcd not found and no apt-get to install etcd-server"
	sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null || die "etcd not found; install Debian's etcd-server (needs root)"
		sudo=(sudo)
	fi
	log "installing etcd-server with apt-get"
	# The package must not try to start a service: policy-rc.d refuses it on containers, and
	# envtest starts its own etcd anyway.
	apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600) # wait for another apt-get to finish
	"${apt[@]}" update -qq >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends etcd-server >&2 ||
		die "apt-get install etcd-server failed"
	etcd="$(command -v etcd || true)"
	[[ -n "$etcd" ]] || die "etcd-server installed but no etcd on PATH"
fi
ln -sfn "$etcd" "$dir/etcd"

if [[ -x "$(command -v kubectl || true)" ]]; then
	ln -sfn "$(command -v kubectl)" "$dir/kubectl"
fi

if [[ ! -x "$dir/kube-apiserver" ]]; then
	mod="$(mktemp -d "$root/build.XXXXXX")"
	trap 'rm -rf "$mod"' EXIT
	log "building kube-apiserver $K8S_VERSION from the Go module proxy (minutes when cold)"
	(
		cd "$mod"
		export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
		"$GO" mod init letsbe.invalid/envtest-assets >/dev/null 2>&1
		# The replace list is the staging list in k8s.io/kubernetes's own go.mod, minus the
		# sample-* modules, which are not published for every release.
		gomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
		[[ -f "$gomod" ]] || { echo "no go.mod for k8s.io/kubernetes@v$K8S_VERSION" >&2; exit 1; }
		staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod" | grep -v '^k8s\.io/sample-')"
		[[ -n "$staging" ]] || { echo "no staging modules in $gomod" >&2; exit 1; }
		args=(-require "k8s.io/kubernetes@v$K8S_VERSION")
		for m in $staging; do
			args+=(-replace "$m=$m@$STAGING_VERSION")
		done
		"$GO" mod edit "${args[@]}"
		"$GO" get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION"
		pkg=k8s.io/component-base/version
		nice -n 19 "$GO" build -trimpath -o "$dir/kube-apiserver.tmp" \
			-ldflags "-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=${K8S_VERSION%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $pkg.gitTreeState=clean" \
			k8s.io/kubernetes/cmd/kube-apiserver
	) >&2 || die "building kube-apiserver failed"
	mv -f "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
fi

ready || die "assets incomplete in $dir"
log "ready: $("$dir/etcd" --version 2>/dev/null | head -1); $("$dir/kube-apiserver" --version 2>/dev/null)"
echo "$dir"
