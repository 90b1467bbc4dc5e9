#!/usr/bin/env python3
"""The container and Kubernetes files of deploy/, checked without a cluster, a registry or helm.

No container base image can be pulled here and helm is not packaged for Debian, so what can be
checked is checked directly:

* deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-validate, from PyPI; its schemas
  ship inside the package), strictly (unknown fields are errors);
* the ConfigMap's locgate.toml and employees.csv, and the Helm chart's default config, pass
  `locgate validate`; then the real binary runs the ConfigMap's config (binds moved to loopback,
  a made-up certificate and token in place of the Secrets) and the probe routes of the
  Deployment answer without the token while /metrics still needs it;
* every `.Values.x.y` a chart template reads exists in values.yaml, and Chart.yaml has the
  fields helm requires;
* the Containerfile: every COPY source exists in the checkout, and its HEALTHCHECK URL is a route
  the real binary answers without a token, served from the image's own config.

usage: manifests.py LOCGATE_BINARY
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(TOP, "deploy")
FAILURES = []


def ok(what):
    print(f"   ok: {what}")


def bad(what):
    print(f"   FAILED: {what}")
    FAILURES.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None):
    """(status, body) of a GET; (0, reason) when nothing answers."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def validate(binary, config_dir):
    out = subprocess.run(
        [binary, "validate", "-c", os.path.join(config_dir, "locgate.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def verdict(out):
    """The line of `validate` that says whether the config is valid (or its last, an error)."""
    lines = out.splitlines() or [""]
    return next((l for l in lines if "configuration is valid" in l), lines[-1])


def stand_in_secrets(text, tmp):
    """The config with the pod's mounts replaced by files made here: a certificate and key for
    the TLS Secret, a token for the admin Secret, a data directory for the emptyDir, and a Redis
    nobody listens on (validate warns and goes on, as a pod does when Redis is down)."""
    tls, admin = os.path.join(tmp, "tls"), os.path.join(tmp, "admin")
    os.makedirs(tls, exist_ok=True)
    os.makedirs(admin, exist_ok=True)
    if not os.path.exists(os.path.join(tls, "tls.crt")):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", "/CN=portal.example.test", "-days", "1",
             "-keyout", os.path.join(tls, "tls.key"), "-out", os.path.join(tls, "tls.crt")],
            check=True, capture_output=True,
        )
        with open(os.path.join(admin, "admin-token"), "w") as f:
            f.write("a-made-up-admin-token-for-the-check-0123456789\n")
    return (
        text.replace("/run/secrets/locgate-tls/", tls + "/")
        .replace("/run/secrets/locgate-admin/", admin + "/")
        .replace('"/var/lib/locgate"', '"' + os.path.join(tmp, "data") + '"')
        .replace("redis://locgate-redis:6379", "redis://127.0.0.1:9")
    )


def write_config(tmp, name, toml, employees):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "locgate.toml"), "w") as f:
        f.write(toml)
    with open(os.path.join(d, "employees.csv"), "w") as f:
        f.write(employees)
    return d


class Gateway:
    """`locgate run` on a config, stopped with SIGTERM."""

    def __init__(self, binary, config_dir):
        self.proc = subprocess.Popen(
            [binary, "run", "-c", os.path.join(config_dir, "locgate.toml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )

    def wait_for(self, url):
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if get(url)[0] != 0:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def to_loopback(text, ports):
    """Every `bind = "0.0.0.0:PORT"` moved to 127.0.0.1 on a free port; `ports` maps old to new."""
    def swap(m):
        new = free_port()
        ports[int(m.group(1))] = new
        return f'bind = "127.0.0.1:{new}"'
    return re.sub(r'bind = "0\.0\.0\.0:(\d+)"', swap, text)


def check_kubernetes(binary, tmp):
    print("== kubernetes: deploy/k8s (schemas, config, probes)")
    try:
        import kubernetes_validate
    except ImportError:
        bad("kubernetes-validate is not installed (pip install kubernetes-validate)")
        return
    version = kubernetes_validate.latest_version()
    for name in sorted(os.listdir(os.path.join(DEPLOY, "k8s"))):
        path = os.path.join(DEPLOY, "k8s", name)
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            what = f"{name}: {d.get('kind')} {d.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(d, version, strict=True)
                ok(f"{what} (Kubernetes {version} schema)")
            except kubernetes_validate.ValidationError as e:
                bad(f"{what}: {e.message} at {'.'.join(map(str, e.path))}")
        by_kind = {d["kind"]: d for d in docs}
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "locgate")
        if deployment["spec"]["replicas"] < 2 or "podAntiAffinity" not in deployment["spec"]["template"]["spec"].get("affinity", {}):
            bad("the Deployment must run several replicas spread by pod anti-affinity")
        if "PodDisruptionBudget" not in by_kind:
            bad("no PodDisruptionBudget")

        config = stand_in_secrets(cm["data"]["locgate.toml"], tmp)
        d = write_config(tmp, "k8s", config, cm["data"]["employees.csv"])
        good, out = validate(binary, d)
        (ok if good else bad)(f"locgate validate of the ConfigMap's config: {verdict(out)}")

        ports = {}
        d = write_config(tmp, "k8s-run", to_loopback(config, ports), cm["data"]["employees.csv"])
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        gw = Gateway(binary, d)
        probes = [container[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
        admin = ports.get(named[probes[0]["port"]])
        if admin is None or not gw.wait_for(f"http://127.0.0.1:{admin}/livez"):
            bad("the ConfigMap's config did not start")
        else:
            for probe in probes:
                port = ports[named[probe["port"]]]
                status, body = get(f"http://127.0.0.1:{port}{probe['path']}")
                if status == 200 and body.strip() in ("ok", "ready"):
                    ok(f"probe {probe['path']} answers {status} {body.strip()!r} without the token")
                else:
                    bad(f"probe {probe['path']} answered {status} {body!r}")
            status, _ = get(f"http://127.0.0.1:{admin}/metrics")
            (ok if status == 401 else bad)(f"/metrics without the token: {status}")
        code, err = gw.stop()
        (ok if code == 0 else bad)(f"SIGTERM: exit {code}" + ("" if code == 0 else f"\n{err}"))


def values_paths(values, prefix=""):
    out = set()
    for k, v in values.items():
        path = f"{prefix}{k}"
        out.add(path)
        if isinstance(v, dict):
            out |= values_paths(v, path + ".")
    return out


def check_helm(binary, tmp):
    print("== helm: deploy/helm/locgate (chart fields, values used, default config)")
    chart_dir = os.path.join(DEPLOY, "helm", "locgate")
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    missing = [k for k in ("apiVersion", "name", "version") if not chart.get(k)]
    if missing or chart["apiVersion"] != "v2":
        bad(f"Chart.yaml: apiVersion v2, name and version required (missing {missing})")
    else:
        ok(f"Chart.yaml: {chart['name']} {chart['version']}")
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f)
    known = values_paths(values)
    templates = os.path.join(chart_dir, "templates")
    used = set()
    for name in sorted(os.listdir(templates)):
        with open(os.path.join(templates, name)) as f:
            text = f.read()
        if text.count("{{") != text.count("}}"):
            bad(f"{name}: unbalanced {{{{ }}}}")
        used |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))
    unknown = sorted(u for u in used if u not in known)
    if unknown:
        bad(f"templates read values that values.yaml does not have: {unknown}")
    else:
        ok(f"all {len(used)} values the templates read are in values.yaml")
    config = stand_in_secrets(values["config"], tmp)
    d = write_config(tmp, "helm", config, values["employees"])
    good, out = validate(binary, d)
    (ok if good else bad)(f"locgate validate of values.config: {verdict(out)}")


def check_containerfile(binary, tmp):
    print("== container: deploy/Containerfile (COPY sources, HEALTHCHECK route)")
    with open(os.path.join(DEPLOY, "Containerfile")) as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    for line in lines:
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        for s in sources:
            if os.path.exists(os.path.join(TOP, s)):
                ok(f"COPY source {s} exists")
            else:
                bad(f"COPY source {s} does not exist in the checkout")
    users = [l.split()[1] for l in lines if l.startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        bad("the image must run as a non-root USER")
    else:
        ok(f"runs as USER {users[-1]}")
    health = next((l for l in lines if l.startswith("HEALTHCHECK")), "")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[^\"' ]*)", health)
    if not url:
        bad("no HEALTHCHECK with a loopback URL")
        return
    port, path = int(url.group(1)), url.group(2)
    with open(os.path.join(DEPLOY, "container", "locgate.toml")) as f:
        config = f.read()
    ports = {}
    config = to_loopback(config, ports).replace('"/var/lib/locgate"', '"' + os.path.join(tmp, "image-data") + '"')
    with open(os.path.join(DEPLOY, "employees.csv")) as f:
        d = write_config(tmp, "image", config, f.read())
    if port not in ports:
        bad(f"HEALTHCHECK port {port} is not a listener of deploy/container/locgate.toml")
        return
    gw = Gateway(binary, d)
    target = f"http://127.0.0.1:{ports[port]}{path}"
    if gw.wait_for(target):
        status, body = get(target)
        (ok if status == 200 else bad)(f"HEALTHCHECK {path} answers {status} {body.strip()!r} without a token")
    else:
        bad("the image's config did not start")
    code, err = gw.stop()
    (ok if code == 0 else bad)(f"SIGTERM: exit {code}" + ("" if code == 0 else f"\n{err}"))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        check_containerfile(binary, tmp)
        check_kubernetes(binary, tmp)
        check_helm(binary, tmp)
    if FAILURES:
        print(f"manifests: {len(FAILURES)} failed")
        sys.exit(1)
    print("manifests: all passed")


if __name__ == "__main__":
    main()
