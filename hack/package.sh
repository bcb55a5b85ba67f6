#!/usr/bin/env bash
# Build the release artefacts of letsbe-agent into DIST (`make package` calls this):
#
#   DIST/letsbe-agent_<version>-1_<arch>.deb        dpkg -i (binary, unit, agent.env, state dir)
#   DIST/letsbe-agent-<version>-1.<arch>.rpm        rpm -i / dnf install, the same contents
#   DIST/letsbe-agent_<version>_linux_<arch>.tar.gz binary, unit (for /usr/local/bin), env
#                                                   example, README and docs/operating.md
#   DIST/SHA256SUMS                                 sha256sum -c SHA256SUMS
#
# for each GOARCH in ARCHES. NFPM is the nfpm binary (the Makefile builds a pinned one);
# VERSION and COMMIT are stamped into the binary (letsbe-agent version). The package version is
# VERSION without a leading v, with git describe's -N-gHASH as +N.gHASH; a VERSION that is no
# release (a bare commit) becomes 0.0.0+git.<VERSION>. Timestamps come from the commit
# (SOURCE_DATE_EPOCH), so the archives of one commit are the same bytes.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src"
NFPM=${NFPM:?set NFPM to the nfpm binary (make package builds one)}
GO=${GO:-go}
DIST=${DIST:-$src/dist}
ARCHES=${ARCHES:-$($GO env GOARCH)}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export PKG_MAINTAINER=${PKG_MAINTAINER:-LetsBe <ops@letsbe.io>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

v=${VERSION#v}
if [[ $v =~ ^[0-9]+\.[0-9]+ ]]; then
	v=${v/-/+}
	v=${v//-/.}
else
	v=0.0.0+git.${v//-/.}
fi
[[ $v =~ ^[0-9A-Za-z.+~]+$ ]] || { echo "package.sh: cannot make a package version of VERSION '$VERSION'" >&2; exit 2; }
export PKG_VERSION=$v

mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

artefacts=()
for arch in $ARCHES; do
	stage=$work/$arch
	mkdir -p "$stage"
	echo "Building letsbe-agent $VERSION for linux/$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch $GO build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o "$stage/letsbe-agent" ./cmd/letsbe-agent
	hack/render-unit.sh /usr/bin /etc >"$stage/letsbe-agent.service"

	export PKG_ARCH=$arch PKG_STAGE=$stage
	for packager in deb rpm; do
		out=$("$NFPM" package --config config/packaging/nfpm.yaml --packager "$packager" --target "$DIST/")
		echo "$out"
		artefacts+=("$(sed -n 's/^created package: //p' <<<"$out" | tail -1)")
	done

	name=letsbe-agent_${PKG_VERSION}_linux_$arch
	root=$work/archive/$name
	mkdir -p "$root"
	install -m 0755 "$stage/letsbe-agent" "$root/letsbe-agent"
	hack/render-unit.sh /usr/local/bin /etc >"$root/letsbe-agent.service"
	chmod 0644 "$root/letsbe-agent.service"
	install -m 0600 config/systemd/agent.env "$root/agent.env.example"
	install -m 0644 README.md docs/operating.md "$root/"
	tar -C "$work/archive" --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9n >"$DIST/$name.tar.gz"
	artefacts+=("$DIST/$name.tar.gz")
	echo "created archive: $DIST/$name.tar.gz"
done

# SHA256SUMS lists every artefact of this run (a file of an earlier run in DIST is left out).
(cd "$DIST" && for f in "${artefacts[@]}"; do basename "$f"; done | sort | xargs sha256sum >SHA256SUMS)
echo "created checksums: $DIST/SHA256SUMS"
cat "$DIST/SHA256SUMS"
