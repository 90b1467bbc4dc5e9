#!/usr/bin/env python3
"""Builds the labelled replay corpus of issue 14 (tests/corpus/): employees, their declared homes,
60 days of sign-ins from real public address ranges, and which are honest and which are fraud.

Addresses are picked from the embedded data (data/city.mmdb and data/asn.mmdb) by country, city
and AS number, so each one really geolocates where the scenario needs it: a Comcast line in
Seattle, Starlink at its Los Angeles point of presence, an M247 VPN exit in New York, a dedicated
server at Krypt in Los Angeles. Names are synthetic. The output is committed; re-run only when the
embedded data changes (needs `pip install maxminddb`; about two minutes):

    python3 tests/corpus/generate.py

Writes employees.toml, signins.csv, labels.csv and city-db.csv (the places a commercial city
database would give the same addresses, for the second scoring run) next to this file.
"""

import collections
import datetime as dt
import ipaddress
import os
import random
import sys

import maxminddb

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data")
START = dt.date(2026, 9, 1)
DAYS = 60


def index():
    """(country, city, asn) -> networks, in file order."""
    city = maxminddb.open_database(os.path.join(DATA, "city.mmdb"))
    asn = maxminddb.open_database(os.path.join(DATA, "asn.mmdb"))
    idx = collections.defaultdict(list)
    for net, rec in city:
        if net.version == 6:
            if net.network_address.packed[:12] != b"\0" * 12 or net.prefixlen < 96:
                continue
            net = ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
        if net.prefixlen > 28:
            continue
        a = asn.get(str(net.network_address + 1)) or {}
        key = (rec.get("country_code"), rec.get("city"), a.get("autonomous_system_number"))
        idx[key].append((net, rec))
    return idx


IDX = index()
USED = set()


def addr(cc, city, asn, n=0):
    """The n-th distinct usable address of (country, city, AS), with its embedded record."""
    nets = IDX.get((cc, city, asn))
    if not nets:
        sys.exit(f"no network for {cc} {city} AS{asn} in the embedded data")
    net, rec = nets[(n * 7) % len(nets)]
    for host in range(11, 250, 13):
        ip = str(net.network_address + host)
        if ip not in USED:
            USED.add(ip)
            return ip, rec
    sys.exit(f"no free address in {net}")


# Declared homes: (lat, lon) of the place as HR geocodes the address.
PLACES = {
    "Seattle": (47.6062, -122.3321, "America/Los_Angeles"),
    "Chicago": (41.8781, -87.6298, "America/Chicago"),
    "Austin": (30.2672, -97.7431, "America/Chicago"),
    "Berlin": (52.52, 13.405, "Europe/Berlin"),
    "London": (51.5072, -0.1276, "Europe/London"),
    "Boston": (42.3601, -71.0589, "America/New_York"),
    "Atlanta": (33.749, -84.388, "America/New_York"),
    "Bozeman": (45.6770, -111.0429, "America/Denver"),
    "McCall": (44.9110, -116.0987, "America/Boise"),
    "Montpelier": (44.2601, -72.5754, "America/New_York"),
    "Spokane": (47.6588, -117.4260, "America/Los_Angeles"),
    "Harrisburg": (40.2732, -76.8867, "America/New_York"),
    "Madison": (43.0731, -89.4012, "America/Chicago"),
    "New York": (40.7128, -74.0060, "America/New_York"),
    "Portland": (45.5152, -122.6784, "America/Los_Angeles"),
    "Newark": (40.7357, -74.1724, "America/New_York"),
    "Philadelphia": (39.9526, -75.1652, "America/New_York"),
    "Dallas": (32.7767, -96.7970, "America/Chicago"),
    "Charlotte": (35.2271, -80.8431, "America/New_York"),
    "Phoenix": (33.4484, -112.0740, "America/Phoenix"),
    "Houston": (29.7604, -95.3698, "America/Chicago"),
    "Los Angeles": (34.0522, -118.2437, "America/Los_Angeles"),
}

rng = random.Random(14)
employees = []  # (id, class, honest, home, extra toml, description)
signins = []  # (utc datetime, ip, user)
truth = {}  # ip -> (country, region, city, lat, lon, accuracy, connection_type)


def workdays():
    d = START
    for _ in range(DAYS):
        if d.weekday() < 5:
            yield d
        d += dt.timedelta(days=1)


def at(day, hour, minute, zone_offset_h):
    """UTC time of a local wall-clock time (fixed offset; DST is not needed for the scores)."""
    local = dt.datetime(day.year, day.month, day.day, hour, minute)
    return local - dt.timedelta(hours=zone_offset_h)


OFFSETS = {
    "America/Los_Angeles": -7, "America/Denver": -6, "America/Boise": -6, "America/Phoenix": -7,
    "America/Chicago": -5, "America/New_York": -4, "Europe/Berlin": 2, "Europe/London": 1,
}


def sign_in(user, day, ip, zone, hours=(9, 13, 16)):
    for h in hours:
        signins.append((at(day, h, rng.randrange(0, 50), OFFSETS[zone]), ip, user))


def note_truth(ip, rec, connection_type=None, jitter_km=8.0, accuracy=10):
    """The place a commercial city database gives: the embedded point moved a few km, finer."""
    lat, lon = rec["latitude"], rec["longitude"]
    if connection_type is None:
        lat += rng.uniform(-1, 1) * jitter_km / 111.0
        lon += rng.uniform(-1, 1) * jitter_km / 111.0
    truth[ip] = (rec.get("country_code"), rec.get("state1") or "", rec.get("city") or "",
                 round(lat, 4), round(lon, 4), accuracy if connection_type is None else 500,
                 connection_type or "")


def pick(cc, city, asn, n=0, connection_type=None):
    ip, rec = addr(cc, city, asn, n)
    note_truth(ip, rec, connection_type)
    return ip


def employee(eid, cls, honest, home, description, extra=""):
    employees.append((eid, cls, honest, home, extra, description))
    return PLACES[home][2]


# ---------------------------------------------------------------------------------------------
# Honest employees
# ---------------------------------------------------------------------------------------------

for eid, home, cc, isp in [
    ("ava", "Seattle", "US", 7922), ("ben", "Chicago", "US", 7922), ("cara", "Austin", "US", 7018),
    ("dev", "Berlin", "DE", 3320), ("eli", "London", "GB", 2856),
]:
    zone = employee(eid, "fixed_home", True, home, f"home line in {home}")
    lines = [pick(cc, home, isp, n) for n in range(2)]  # the ISP renumbers once
    for i, day in enumerate(workdays()):
        sign_in(eid, day, lines[0] if i < 25 else lines[1], zone)

for eid, home, isp, trip_city, trip_isp, trip_start in [
    ("fay", "Boston", 701, "Houston", 7922, 17), ("gus", "Atlanta", 7922, "Las Vegas", 22773, 30),
]:
    zone = employee(eid, "business_trip", True, home,
                    f"home line in {home}; an undeclared 4-day trip to {trip_city}")
    line, hotel = pick("US", home, isp), pick("US", trip_city, trip_isp)
    for i, day in enumerate(workdays()):
        sign_in(eid, day, hotel if trip_start <= i < trip_start + 4 else line, zone)

# Starlink: the address sits at a point of presence hundreds of km away, and moves between them.
for eid, home, pops in [
    ("hal", "Bozeman", ["Seattle", "Los Angeles", "Dallas"]),
    ("ivy", "McCall", ["Seattle", "Los Angeles"]),
    ("jon", "Montpelier", ["New York", "Ashburn"]),
]:
    zone = employee(eid, "satellite", True, home, f"Starlink at home in {home}")
    ips = [pick("US", p, 14593, k, "Satellite") for k, p in enumerate(pops)]
    for i, day in enumerate(workdays()):
        sign_in(eid, day, ips[(i // 5) % len(ips)], zone)

# 5G/LTE home internet: a gateway city 300-1,500 km away, two of them within one day.
for eid, home, asn, gateways in [
    ("kim", "Spokane", 21928, ["Seattle", "Sunnyvale"]),
    ("lee", "Harrisburg", 22394, ["Philadelphia", "Ashburn", "Newark"]),
    ("max", "Madison", 21928, ["Chicago", "Ashburn"]),
]:
    zone = employee(eid, "5g_home", True, home, f"5G home internet (AS{asn}) in {home}")
    ips = [pick("US", g, asn, k, "Cellular") for k, g in enumerate(gateways)]
    for i, day in enumerate(workdays()):
        for h in (9, 13, 16):
            sign_in(eid, day, ips[rng.randrange(len(ips))], zone, hours=(h,))

# Phones: the home line most days, the carrier's gateway when on a hotspot.
for eid, home, isp, carrier, gateways in [
    ("nia", "New York", 701, 22394, ["Newark", "Ashburn"]),
    ("oli", "Chicago", 7922, 21928, ["Chicago", "Ashburn"]),
]:
    zone = employee(eid, "mobile", True, home, f"home line in {home}, phone hotspot (AS{carrier})")
    line = pick("US", home, isp, 3)
    phones = [pick("US", g, carrier, k + 5, "Cellular") for k, g in enumerate(gateways)]
    for day in workdays():
        if rng.random() < 0.3:
            sign_in(eid, day, line, zone, hours=(9,))
            sign_in(eid, day, phones[rng.randrange(len(phones))], zone, hours=(13, 16))
        else:
            sign_in(eid, day, line, zone)

# Nomads: declared travel windows abroad.
zone = employee("pia", "nomad", True, "Portland", "home in Portland; 17 days in Lisbon (declared)",
                'travel = [{ from = 2026-09-14, to = 2026-09-30, countries = ["PT"] }]')
line, lisbon = pick("US", "Portland", 7922, 2), pick("PT", "Lisbon", 3243)
for day in workdays():
    if dt.date(2026, 9, 14) <= day <= dt.date(2026, 9, 30):
        for h in (9, 13, 16):
            signins.append((at(day, h, rng.randrange(0, 50), 1), lisbon, "pia"))
    else:
        sign_in("pia", day, line, zone)
zone = employee("quinn", "nomad", True, "Austin",
                "home in Austin; 12 days in Mexico City, then 5 in Berlin (both declared)",
                'travel = [{ from = 2026-10-05, to = 2026-10-16, countries = ["MX"] }, '
                '{ from = 2026-09-07, to = 2026-09-11, countries = ["DE"] }]')
line, cdmx, berlin = (pick("US", "Austin", 11427), pick("MX", "Mexico City", 13591),
                      pick("DE", "Berlin", 6805))
for day in workdays():
    if dt.date(2026, 10, 5) <= day <= dt.date(2026, 10, 16):
        for h in (9, 13, 16):
            signins.append((at(day, h, rng.randrange(0, 50), -6), cdmx, "quinn"))
    elif dt.date(2026, 9, 7) <= day <= dt.date(2026, 9, 11):
        for h in (9, 13, 16):
            signins.append((at(day, h, rng.randrange(0, 50), 2), berlin, "quinn"))
    else:
        sign_in("quinn", day, line, zone)

# A couple: two employees, one home line.
couple = pick("US", "Portland", 7922, 5)
for eid in ("rae", "sam"):
    zone = employee(eid, "couple", True, "Portland", "shares one home line with a partner")
    for day in workdays():
        sign_in(eid, day, couple, zone)

# Corporate egress: the New York office (allow_networks in config.toml) two days a week.
office = pick("US", "New York", 7018, 9)
for eid, home, isp in [("tom", "Newark", 7922), ("uma", "Philadelphia", 7922),
                       ("vic", "Philadelphia", 701)]:
    zone = employee(eid, "corporate_egress", True, home,
                    f"home in {home}, the New York office on Tuesdays and Thursdays")
    line = pick("US", home, isp, 4)
    for day in workdays():
        sign_in(eid, day, office if day.weekday() in (1, 3) else line, zone)

# ---------------------------------------------------------------------------------------------
# Fraud, each hiding as a careful worker would
# ---------------------------------------------------------------------------------------------

# A laptop farm: four identities with homes in four states, one Cox line in Phoenix.
farm = pick("US", "Phoenix", 22773, 2)
for eid, home in [("wes", "Atlanta"), ("xia", "Dallas"), ("yan", "Charlotte"), ("zed", "Phoenix")]:
    zone = employee(eid, "laptop_farm", False, home,
                    f"declared {home}; a laptop in a farm in Phoenix")
    for day in workdays():
        sign_in(eid, day, farm, zone, hours=(8 + rng.randrange(3), 12, 15 + rng.randrange(2)))

# Commercial VPN: exits chosen in the declared state or the nearest big city.
for eid, home, exit_city in [("abe", "Seattle", "Sunnyvale"), ("bea", "Houston", "Dallas")]:
    zone = employee(eid, "vpn", False, home, f"declared {home}; an M247 VPN exit in {exit_city}")
    exits = [pick("US", exit_city, 9009, k) for k in range(3)]
    for day in workdays():
        sign_in(eid, day, exits[rng.randrange(len(exits))], zone)

# A rented dedicated server in the declared metro, driven over remote desktop from abroad.
for eid, home, asn in [("cal", "Los Angeles", 35908), ("dee", "Dallas", 29802)]:
    zone = employee(eid, "rented_server", False, home,
                    f"declared {home}; a dedicated server (AS{asn}) in {home}")
    server = pick("US", home, asn)
    for day in workdays():
        sign_in(eid, day, server, zone)

# Lives elsewhere in the same country: a real home line, in another state every day.
for eid, home, real, isp in [("eve", "Seattle", "Las Vegas", 22773),
                             ("fin", "Boston", "North Miami", 7922)]:
    zone = employee(eid, "lives_elsewhere", False, home,
                    f"declared {home}; lives in {real}")
    line = pick("US", real, isp, 6)
    for day in workdays():
        sign_in(eid, day, line, zone)

# A residential proxy in the home metro, with two slips a direct connection from abroad.
for eid, home, isp, slip_cc, slip_city, slip_asn in [
    ("gil", "Chicago", 7922, "CN", "Shenyang", 4837),
    ("hoa", "Atlanta", 7018, "RU", "Vladivostok", 12389),
]:
    zone = employee(eid, "proxy_with_slips", False, home,
                    f"declared {home}; a residential proxy in {home}, two slips from {slip_city}")
    proxy, direct = pick("US", home, isp, 8), pick(slip_cc, slip_city, slip_asn)
    days = list(workdays())
    slips = {days[20], days[33]}
    for day in days:
        if day in slips:
            sign_in(eid, day, proxy, zone, hours=(9,))
            sign_in(eid, day, direct, zone, hours=(13,))
            sign_in(eid, day, proxy, zone, hours=(16,))
        else:
            sign_in(eid, day, proxy, zone)

# An account shared with a front: the front signs in at home in the morning, the worker from
# Shenyang in the afternoon (US time) through a Chinese line.
zone = employee("ian", "account_sharing", False, "Atlanta",
                "declared Atlanta; the front's home line mornings, the worker from Shenyang")
front, worker = pick("US", "Atlanta", 7922, 11), pick("CN", "Shenyang", 4134)
for i, day in enumerate(workdays()):
    sign_in("ian", day, front, zone, hours=(8,))
    if i % 3 == 0:
        sign_in("ian", day, worker, zone, hours=(14, 17))
    else:
        sign_in("ian", day, front, zone, hours=(14, 17))

# ---------------------------------------------------------------------------------------------

with open(os.path.join(HERE, "employees.toml"), "w") as f:
    f.write("# Generated by tests/corpus/generate.py: synthetic employees of the labelled corpus.\n")
    for eid, cls, honest, home, extra, _ in employees:
        lat, lon, zone = PLACES[home]
        f.write(f'\n[[employee]]\nid = "{eid}"\ncountry = "{"DE" if home == "Berlin" else "GB" if home == "London" else "US"}"\n'
                f'city = "{home}"\nlat = {lat}\nlon = {lon}\nradius_km = 50\ntime_zone = "{zone}"\n')
        if extra:
            f.write(extra + "\n")
with open(os.path.join(HERE, "labels.csv"), "w") as f:
    f.write("employee,class,honest,description\n")
    for eid, cls, honest, home, _, desc in employees:
        f.write(f'{eid},{cls},{"yes" if honest else "no"},"{desc}"\n')
with open(os.path.join(HERE, "signins.csv"), "w") as f:
    f.write("time,ip,user\n")
    for t, ip, user in sorted(signins):
        f.write(f"{t.strftime('%Y-%m-%dT%H:%M:00Z')},{ip},{user}\n")
with open(os.path.join(HERE, "city-db.csv"), "w") as f:
    f.write("ip,country,region,city,lat,lon,accuracy_km,connection_type\n")
    for ip, (cc, rg, ct, lat, lon, acc, conn) in sorted(truth.items()):
        f.write(f'{ip},{cc},"{rg}","{ct}",{lat},{lon},{acc},{conn}\n')
print(f"{len(employees)} employees, {len(signins)} sign-ins, office {office}", file=sys.stderr)
