"""Start time and resident memory of `locgate run` on the embedded data (issue 13, point 3).

    python3 bench/rss_default.py target/release/locgate CONFIG N

CONFIG is the embedded default config with its bind moved to 127.0.0.1:28080 (so it does not
clash with a gateway already on 8080), e.g.
    sed 's/127.0.0.1:8080/127.0.0.1:28080/' src/config/default.toml > /tmp/default-28080.toml
and events still on standard output (sent to /dev/null here). It starts the binary, waits for the
port, then sends N whoami requests (JSON) on one keep-alive connection, each with a new
X-Forwarded-For address (4 in 5 random public IPv4, 1 in 5 random IPv6 in 2000::/3; seeded),
and prints VmRSS (anonymous and file-backed parts) from /proc at checkpoints and VmHWM at the end.
Random addresses are the worst case for memory: each lookup walks a different path of the tree.
"""
import http.client, random, re, subprocess, sys, time
binary, cfg, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss(pid):
    st = open(f"/proc/{pid}/status").read()
    g = lambda k: int(re.search(k + r":\s+(\d+)", st).group(1)) / 1024
    return f"{g('VmRSS'):.1f} (anon {g('RssAnon'):.1f}, file {g('RssFile'):.1f})"
try:
    http.client.HTTPConnection("127.0.0.1", 28080, timeout=1).connect()
    sys.exit("127.0.0.1:28080 is already in use: stop what listens there first")
except OSError:
    pass
t0 = time.monotonic()
p = subprocess.Popen([binary, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", 28080, timeout=5); c.connect(); break
        except OSError:
            if p.poll() is not None:
                sys.exit(f"locgate exited with status {p.returncode}")
            time.sleep(0.005)
    print(f"ready after {1000*(time.monotonic()-t0):.0f} ms; VmRSS {rss(p.pid)} MB")
    rng = random.Random(13)
    def public():
        while True:
            a = rng.randrange(1 << 32)
            o = a >> 24
            if o in (0, 10, 127) or o >= 224 or (a >> 16) in (0xA9FE, 0xC0A8) or (a >> 20) == 0xAC1: continue
            return ".".join(str((a >> s) & 255) for s in (24, 16, 8, 0))
    t1 = time.monotonic(); checkpoints = {1000, 10000, 50000, 100000, n}
    for i in range(1, n + 1):
        ip = public() if i % 5 else "%x:%x:%x::1" % (0x2000 + rng.randrange(0x1000), rng.randrange(65536), rng.randrange(65536))
        c.request("GET", "/", headers={"X-Forwarded-For": ip, "Accept": "application/json"})
        r = c.getresponse(); r.read()
        if i in checkpoints:
            print(f"after {i} requests from distinct random addresses ({i/(time.monotonic()-t1):.0f} req/s): VmRSS {rss(p.pid)} MB")
    hwm = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1)) / 1024
    print(f"peak VmHWM {hwm:.1f} MB")
finally:
    p.terminate()
    p.wait()
