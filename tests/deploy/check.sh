#!/usr/bin/env bash
# The Linux install of deploy/ checked end to end, as far as a machine without a running systemd
# allows (issue 17); run by .ci/run with the debug binary, and by hand:
#   bash tests/deploy/check.sh target/debug/locgate
#
# 1. The package: deploy/build-deb.sh builds it; dpkg installs it into an empty root
#    (--root, maintainer scripts run with DPKG_ROOT), as `apt install ./locgate_*.deb` does in
#    deploy/sso-portal.md step 1. Owners and modes are what the units need.
# 2. The service user reads every file it needs: `locgate validate` runs as the package's
#    locgate uid/gid, chrooted into that root (only the installed files and the binary's
#    libraries are there), against the installed example config (guide step 3); a file the user
#    cannot read must make it fail (so the check can fail).
# 3. `systemd-analyze verify` and `security --offline` of the installed units.
# 4. The guide's review recipe (step 4), copied from deploy/sso-portal.md, on real events.
# 5. tests/deploy/manifests.py: Containerfile, Kubernetes manifests and Helm chart.
# Steps that need root (dpkg --root, chroot) or a tool that is missing say so and are skipped;
# .ci/run runs as root with every tool installed, where nothing is skipped.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$(realpath "${1:?usage: tests/deploy/check.sh LOCGATE_BINARY}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
ok() { echo "   ok: $*"; }
bad() {
  echo "   FAILED: $*"
  failures=$((failures + 1))
}
skip() { echo "   skipped: $*"; }
is_root() { [ "$(id -u)" = 0 ]; }

echo "== deploy 1: package (deploy/build-deb.sh) installed into an empty root"
deb=$(CARGO_TARGET_DIR="$work/target" sh "$top/deploy/build-deb.sh" "$bin" -Zgzip -z1)
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/   \1:/p'
root=$work/root
if is_root; then
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
  : >"$root/var/lib/dpkg/status"
  # The root has no libc6 package to satisfy Depends, and no shell to chroot into for the
  # maintainer scripts, which therefore run on the host with DPKG_ROOT set.
  dpkg --root="$root" --force-depends --force-script-chrootless --log=/dev/null -i "$deb" >"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log"; bad "dpkg -i --root"; }
  uid=$(awk -F: '$1 == "locgate" { print $3 }' "$root/etc/passwd" 2>/dev/null || true)
  gid=$(awk -F: '$1 == "locgate" { print $3 }' "$root/etc/group" 2>/dev/null || true)
  if [ -n "$uid" ] && [ -n "$gid" ] && [ "$uid" != 0 ]; then
    ok "postinst created the static user locgate ($uid:$gid) from sysusers.d"
  else
    bad "no locgate user in the installed root"
  fi
  expect_mode() {
    local got
    got=$(stat -c '%a %u:%g' "$root$1" 2>/dev/null || echo missing)
    if [ "$got" = "$2" ]; then ok "$1 $got"; else bad "$1 is $got, want $2"; fi
  }
  expect_mode /etc/locgate "750 0:$gid"
  expect_mode /etc/locgate/locgate.toml "640 0:$gid"
  expect_mode /etc/locgate/employees.csv "640 0:$gid"
  expect_mode /var/lib/locgate "750 $uid:$gid"
  expect_mode /var/log/locgate "750 $uid:$gid"
  expect_mode /usr/bin/locgate "755 0:0"
  for f in /usr/share/doc/locgate/README.md /usr/share/doc/locgate/sso-portal.md \
    /usr/lib/sysusers.d/locgate.conf /usr/lib/tmpfiles.d/locgate.conf; do
    if [ -f "$root$f" ]; then ok "$f installed"; else bad "$f missing"; fi
  done
  for doc in $(sed -n 's/^Documentation=//p' "$root/usr/lib/systemd/system/"*.service | tr ' ' '\n' | sort -u); do
    if [ -f "$root${doc#file:}" ]; then ok "Documentation=$doc is installed"; else bad "Documentation=$doc is not installed"; fi
  done
  if dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/locgate/locgate.toml; then
    ok "/etc/locgate/locgate.toml is a conffile (an upgrade keeps the operator's edits)"
  else
    bad "/etc/locgate/locgate.toml is not a conffile"
  fi
else
  skip "dpkg --root and the owner checks need root"
fi

echo "== deploy 2: locgate validate as the service user, in the installed root"
if is_root && command -v chroot >/dev/null && [ -n "${uid:-}" ]; then
  # The binary's shared libraries, so it runs in a root that holds nothing else.
  ldd "$root/usr/bin/locgate" | grep -o '/[^ ]*' | while read -r lib; do
    cp --parents -L "$lib" "$root"
  done
  as_service() { chroot --userspec="$uid:$gid" "$root" /usr/bin/locgate "$@"; }
  if out=$(as_service validate -c /etc/locgate/locgate.toml 2>&1); then
    ok "validate as $uid:$gid: $(echo "$out" | grep 'configuration is valid')"
  else
    echo "$out"
    bad "the service user cannot validate the installed config"
  fi
  chmod 0600 "$root/etc/locgate/employees.csv"
  if out=$(as_service validate -c /etc/locgate/locgate.toml 2>&1); then
    bad "validate passed although the service user cannot read employees.csv"
  elif echo "$out" | grep -q 'employees.csv.*ermission denied'; then
    ok "control: an unreadable employees.csv fails validate (Permission denied)"
  else
    echo "$out"
    bad "an unreadable employees.csv failed validate without saying so"
  fi
  chmod 0640 "$root/etc/locgate/employees.csv"
else
  skip "chroot as the service user needs root and step 1"
fi

echo "== deploy 3: systemd-analyze verify and security of the installed units"
if command -v systemd-analyze >/dev/null && [ -d /usr/lib/systemd/system ] && [ -d "$root/usr/lib/systemd/system" ]; then
  # What every real system has and the empty root lacks: systemd's own units (the targets the
  # units are ordered against) and ExecReload's kill(1). The package's units are not replaced.
  cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
  install -D -m 0755 "$(type -P kill)" "$root/bin/kill"
  for unit in locgate.service locgate-update.service locgate-update.timer; do
    if out=$(systemd-analyze verify --root="$root" "/usr/lib/systemd/system/$unit" 2>&1) && [ -z "$out" ]; then
      ok "systemd-analyze verify $unit"
    else
      echo "$out"
      bad "systemd-analyze verify $unit"
    fi
  done
  for unit in locgate.service locgate-update.service; do
    exposure=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>/dev/null \
      | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    if [ -z "$exposure" ]; then
      bad "systemd-analyze security $unit gave no score"
    elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }'; then
      ok "systemd-analyze security $unit: exposure $exposure (at most 2.5)"
    else
      bad "systemd-analyze security $unit: exposure $exposure, above 2.5"
    fi
  done
else
  skip "no systemd-analyze, or no installed root"
fi

echo "== deploy 4: the guide's review recipe (deploy/sso-portal.md step 4)"
if command -v jq >/dev/null; then
  recipe=$(sed -n '/^jq -r /,/head$/p' "$top/deploy/sso-portal.md" | sed 's/\\$//' | tr -d '\n')
  events=$work/events.jsonl
  # The same two sign-ins twice, as events the gateway writes (different timestamps and ids).
  for _ in 1 2; do
    "$bin" check --json --mode enforce 175.45.176.1 8.8.8.8 >>"$events" || true
  done
  got=$(sh -c "${recipe//\/var\/log\/locgate\/events.jsonl/$events}")
  echo "$got" | sed 's/^/   | /'
  if echo "$got" | grep -Eq '^ *2[[:space:]]+175\.45\.176\.1[[:space:]]+KP[[:space:]]+sanctioned_country$'; then
    ok "the recipe counts repeats of one address, country and reasons"
  else
    bad "the recipe does not count repeats (is the timestamp back in the key?)"
  fi
else
  skip "no jq"
fi

echo "== deploy 5: container and Kubernetes files (tests/deploy/manifests.py)"
python3 "$top/tests/deploy/manifests.py" "$bin" || bad "tests/deploy/manifests.py"

if [ "$failures" -gt 0 ]; then
  echo "deploy checks: $failures failed"
  exit 1
fi
echo "deploy checks: all passed"
