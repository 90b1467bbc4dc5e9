#!/usr/bin/env python3
"""Writes the inputs of BENCHMARKS.md section 9 into DIR (default /tmp/rp): one million Okta System
Log events as JSON lines (5% refused), one million `time,ip,user` CSV rows, and a directory of the
5,000 employees they name. Random public IPv4 addresses, fixed seed.

    python3 bench/replay_1m.py /tmp/rp
    taskset -c 0 target/release/locgate replay /tmp/rp/okta-1m.jsonl -c /tmp/rp/cfg.toml --summary
"""
import datetime
import json
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rp"
os.makedirs(out, exist_ok=True)
random.seed(7)
users = [f"user{i}@example.com" for i in range(5000)]
t0 = datetime.datetime(2026, 9, 1, tzinfo=datetime.timezone.utc)


def ip():
    return f"{random.randint(1, 223)}.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


with open(os.path.join(out, "okta-1m.jsonl"), "w") as f:
    for i in range(1_000_000):
        t = (t0 + datetime.timedelta(seconds=i * 7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        f.write(json.dumps({
            "actor": {"id": "00u1a2b3c4d5e6f7g8h9", "type": "User", "alternateId": random.choice(users), "displayName": "Some One"},
            "client": {"userAgent": {"rawUserAgent": "Mozilla/5.0"}, "ipAddress": ip(), "device": "Computer"},
            "eventType": "user.session.start",
            "outcome": {"result": "SUCCESS" if random.random() < 0.95 else "FAILURE"},
            "published": t, "severity": "INFO", "uuid": "3c6f2a4e-1d2b-11ef-9a1b-0242ac120002", "version": "0",
        }) + "\n")
with open(os.path.join(out, "plain-1m.csv"), "w") as f:
    f.write("time,ip,user\n")
    for i in range(1_000_000):
        f.write(f"{1795168800 + i * 7},{ip()},{random.choice(users)}\n")
with open(os.path.join(out, "employees.csv"), "w") as f:
    f.write("id,aliases,country,city,lat,lon\n")
    for i in range(5000):
        f.write(f"e{i},user{i}@example.com,US,Austin,30.27,-97.74\n")
with open(os.path.join(out, "cfg.toml"), "w") as f:
    f.write('[employees]\nfile = "employees.csv"\n')
