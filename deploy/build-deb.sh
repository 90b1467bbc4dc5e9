#!/bin/sh
# Builds target/debian/locgate_VERSION_ARCH.deb with plain dpkg-deb from the tree of
# deploy/install.sh, the maintainer scripts in deploy/debian/ and the conffiles of /etc/locgate.
# (cargo-deb would need compiling first, several minutes in CI; this needs only dpkg-deb.)
#
#   usage: deploy/build-deb.sh [BINARY [dpkg-deb options...]]   (into $CARGO_TARGET_DIR/debian)
#   e.g.   cargo build --release --locked && sh deploy/build-deb.sh
#          sh deploy/build-deb.sh target/debug/locgate -Zgzip -z1      (what CI does)
#
# Prints the path of the package it wrote.
set -eu
deploy=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$deploy")
bin=${1:-${CARGO_TARGET_DIR:-$top/target}/release/locgate}
[ "$#" -gt 0 ] && shift
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$top/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

sh "$deploy/install.sh" "$stage" "$bin"
# Debug info stays out of the package (the release profile keeps it for profiling).
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug "$stage/usr/bin/locgate"
fi
# The oldest glibc the binary accepts, from the symbol versions it needs.
glibc=$(objdump -T "$stage/usr/bin/locgate" 2>/dev/null \
  | sed -n 's/.*GLIBC_\([0-9][0-9.]*\).*/\1/p' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
depends="libc6${glibc:+ (>= $glibc)}"

mkdir -p "$stage/DEBIAN"
install -m 0755 "$deploy/debian/postinst" "$deploy/debian/postrm" "$stage/DEBIAN/"
printf '%s\n' /etc/locgate/locgate.toml /etc/locgate/employees.csv >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@DEPENDS@/$depends/" "$deploy/debian/control.in" >"$stage/DEBIAN/control"

out=${CARGO_TARGET_DIR:-$top/target}/debian
mkdir -p "$out"
deb=$out/locgate_${version}_${arch}.deb
dpkg-deb --root-owner-group "$@" --build "$stage" "$deb" >/dev/null
echo "$deb"
