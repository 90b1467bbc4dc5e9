#!/bin/sh
# Lays out an installed locgate under DESTDIR: exactly what the Debian package holds
# (deploy/build-deb.sh builds it from this tree), and what `sudo sh deploy/install.sh /`
# installs on a host without the package; then `sudo sh deploy/debian/postinst configure`
# creates the user and directories and gives /etc/locgate to the service's group.
#
#   usage: deploy/install.sh DESTDIR [BINARY]        BINARY defaults to target/release/locgate
#
# Existing files in /etc/locgate are never overwritten: the operator's config and directory stay.
set -eu
dest=${1:?usage: deploy/install.sh DESTDIR [BINARY]}
deploy=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$deploy")
bin=${2:-${CARGO_TARGET_DIR:-$top/target}/release/locgate}
if [ ! -x "$bin" ]; then
  echo "install.sh: $bin is not a locgate binary (cargo build --release --locked)" >&2
  exit 1
fi

install -D -m 0755 "$bin" "$dest/usr/bin/locgate"
for unit in locgate.service locgate-update.service locgate-update.timer; do
  install -D -m 0644 "$deploy/$unit" "$dest/usr/lib/systemd/system/$unit"
done
install -D -m 0644 "$deploy/locgate.sysusers" "$dest/usr/lib/sysusers.d/locgate.conf"
install -D -m 0644 "$deploy/locgate.tmpfiles" "$dest/usr/lib/tmpfiles.d/locgate.conf"

# The units' Documentation= and the guides they point to.
doc=$dest/usr/share/doc/locgate
install -D -m 0644 "$top/README.md" "$doc/README.md"
install -m 0644 "$deploy/debian/copyright" "$doc/copyright"
for guide in sso-portal.md vpn.md scim.md kubernetes.md; do
  install -m 0644 "$deploy/$guide" "$doc/$guide"
done
install -D -m 0644 "$deploy/locgate-vpn.toml" "$doc/examples/locgate-vpn.toml"
install -m 0644 "$deploy/employees.example.toml" "$doc/examples/employees.example.toml"

# Readable by the service's group once postinst has set it (0750 / 0640, root-owned).
install -d -m 0750 "$dest/etc/locgate"
if [ ! -e "$dest/etc/locgate/locgate.toml" ]; then
  install -m 0640 "$deploy/locgate-sso.toml" "$dest/etc/locgate/locgate.toml"
fi
if [ ! -e "$dest/etc/locgate/employees.csv" ]; then
  install -m 0640 "$deploy/employees.csv" "$dest/etc/locgate/employees.csv"
fi
