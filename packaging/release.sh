#!/usr/bin/env bash
# Builds spool's release binaries: static (CGO_ENABLED=0), stripped,
# -trimpath, for linux amd64, arm64 (Raspberry Pi 3/4/5 on a 64-bit OS)
# and armv7 (32-bit Raspberry Pi OS), named spool-VERSION-linux-ARCH,
# with SHA256SUMS beside them.
#
#   packaging/release.sh                  # all three, into dist/
#   packaging/release.sh --arch amd64     # some: amd64, arm64, armv7
#   packaging/release.sh --out DIR
#
# The version is the one go build stamps from the checkout (-buildvcs=true,
# whatever GOFLAGS says): the tag at HEAD (git tag v1.2.3 first for a
# release), else a pseudo-version of the commit, "+dirty" when the tree has
# uncommitted changes; `spool version` prints it, and the script checks
# that the binary it can run does.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
arches="amd64 arm64 armv7"
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) arches="${2:?--arch needs a list}"; shift 2 ;;
	--out) out="${2:?--out needs a directory}"; shift 2 ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "release.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

if ! command -v go >/dev/null 2>&1; then
	export PATH="$PATH:/usr/local/go/bin"
fi

# The version, from a build for this machine (what every build stamps).
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
CGO_ENABLED=0 go build -buildvcs=true -trimpath -o "$probe/spool" .
version="$("$probe/spool" version | awk '{print $2}')"
case "$version" in
"" | "(devel)") echo "release.sh: go build stamped no version (build from a git checkout)" >&2; exit 1 ;;
esac

mkdir -p "$out"
rm -f "$out"/spool-*-linux-* "$out/SHA256SUMS"
names=()
for arch in $arches; do
	goarch=$arch goarm=""
	case "$arch" in
	amd64 | arm64) ;;
	armv7) goarch=arm goarm=7 ;;
	*) echo "release.sh: unknown arch $arch (amd64, arm64, armv7)" >&2; exit 2 ;;
	esac
	name="spool-$version-linux-$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm go build -buildvcs=true -trimpath -ldflags='-s -w' -o "$out/$name" .
	names+=("$name")
	echo "built $out/$name ($(wc -c <"$out/$name") bytes)"
done
(cd "$out" && sha256sum "${names[@]}" >SHA256SUMS && sha256sum --quiet -c SHA256SUMS)

# The binary this machine runs says the version it is named for.
host="$(go env GOARCH)"
[ "$host" = arm ] && host=armv7
if [ -x "$out/spool-$version-linux-$host" ]; then
	got="$("$out/spool-$version-linux-$host" version | awk '{print $2}')"
	if [ "$got" != "$version" ]; then
		echo "release.sh: $out/spool-$version-linux-$host says it is $got" >&2
		exit 1
	fi
fi
echo "version $version; checksums in $out/SHA256SUMS"
