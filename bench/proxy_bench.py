#!/usr/bin/env python3
"""Smart proxy figures: throughput and p99 latency through /r/{id}/ against a direct connection to
the guest port, in the same run (wrk, alternating rounds), and the cold-start wait under TCG
(the first request after scale to zero until its answer).

Two ways to run it:
  * against a running appliance with a resource whose guest serves HTTP:
      bench/proxy_bench.py --url http://127.0.0.1:8080 --key ADMIN_KEY --resource web [--path /index.html]
    (the direct side is the VM's address from libvirt's DHCP lease, `virsh domifaddr --source lease`;
    cold starts need the resource's idle timeout to pass, so give it a short one);
  * on its own (no --url): starts `appliance serve` (release binary if built, else debug) on a
    temporary state directory with the test image (images/test/out, `make test-image`), registers
    a resource booting it with vmcloud.httpd=8080, and removes everything afterwards.

Prints a table (direct, proxy, ratio) and writes bench/proxy-results.{json,md}.
Needs: root, libvirtd, wrk (scripts/setup.sh installs it).
"""
import argparse, json, os, platform, re, shutil, socket, statistics, subprocess, sys, tempfile, time
import threading, urllib.request, urllib.error
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg):
    print(f"[proxy-bench] {msg}", file=sys.stderr, flush=True)


class API:
    def __init__(self, url, key):
        self.url, self.key = url.rstrip("/"), key

    def call(self, method, path, body=None, timeout=300):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, path, body=None):
        status, data = self.call(method, path, body)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)


def own_appliance(args):
    binary = args.binary or next(p for p in [ROOT / ".build/release/appliance", ROOT / ".build/debug/appliance"] if p.exists())
    image = Path(args.image)
    if not (image / "initrd.img").exists():
        raise SystemExit(f"no test image in {image}: run `make test-image`")
    work = tempfile.mkdtemp(prefix="vmcloud-proxy-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    state = work + "/state"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logfile = open(work + "/appliance.log", "w")
    proc = subprocess.Popen(
        [str(binary), "serve", "--state-dir", state, "--listen", f"127.0.0.1:{port}", "--accel", "tcg",
         "--image", str(image), "--network", "user", "--no-audio", "--memory", "256", "--vcpus", "1",
         "--log-level", "info"], stdout=logfile, stderr=logfile)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(state + "/admin.key"):
        time.sleep(0.1)
    key = open(state + "/admin.key").read().strip()
    api = API(f"http://127.0.0.1:{port}", key)
    while time.time() < deadline:
        try:
            if api.call("GET", "/v1/pool", timeout=2)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    store = Path(state) / "images/test"
    store.mkdir(parents=True, exist_ok=True)
    for name in ["vmlinuz", "initrd.img", "disk.qcow2"]:
        shutil.copy(image / name, store / name)
        os.chmod(store / name, 0o644)
    cmdline = (image / "cmdline").read_text().strip() + " vmcloud.httpd=8080"
    api.json("POST", "/v1/resources", {
        "id": args.resource, "port": 8080, "idle_timeout": args.idle, "image": "test/disk.qcow2",
        "kernel_image": "test/vmlinuz", "initrd_image": "test/initrd.img", "cmdline": cmdline, "mem_size": 256})
    log(f"appliance {binary} on port {port}, state {state}")

    def cleanup():
        instance = api.json("GET", "/v1/pool")["instance"]
        proc.terminate()
        proc.wait(timeout=30)
        for name in subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True, text=True).stdout.split():
            if name.startswith(f"vmcloud-{instance}-"):
                subprocess.run(["virsh", "-c", "qemu:///system", "destroy", name], capture_output=True)
        if os.environ.get("KEEP_BENCH_STATE") != "1":
            shutil.rmtree(work, ignore_errors=True)
    return api, cleanup, str(binary)


def resource(api, rid):
    return api.json("GET", f"/v1/resources/{rid}")


def guest_address(api, rid):
    vm = resource(api, rid).get("vm") or {}
    out = subprocess.run(["virsh", "-c", "qemu:///system", "domifaddr", vm["domain"], "--source", "lease"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"ipv4\s+(\d+\.\d+\.\d+\.\d+)/", out)
    if not m:
        raise SystemExit(f"no lease for {vm['domain']}: {out}")
    return m.group(1)


def timed_get(api, path):
    t0 = time.monotonic()
    status, body = api.call("GET", path, timeout=300)
    return time.monotonic() - t0, status, body


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url, seconds, connections, threads, key=None):
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for p in ["50", "99"]:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        lat[p] = float(m.group(1)) * UNITS[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"],
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else ""}


class KeepAwake:
    """While the direct side runs, the proxy sees no traffic: a request through it every 2 s
    keeps the resource's idle timeout from stopping the VM under the benchmark."""

    def __init__(self, api, path):
        self.api, self.path, self.stop = api, path, threading.Event()

    def __enter__(self):
        def loop():
            while not self.stop.wait(2):
                try:
                    self.api.call("GET", self.path, timeout=30)
                except OSError:
                    pass
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running appliance (default: start one)")
    ap.add_argument("--key", help="admin key of the running appliance")
    ap.add_argument("--resource", default="bench")
    ap.add_argument("--path", default="/index.html", help="guest path to load")
    ap.add_argument("--idle", type=int, default=8, help="idle timeout of the resource this script registers (s)")
    ap.add_argument("--seconds", type=int, default=10, help="each wrk round")
    ap.add_argument("--rounds", type=int, default=3, help="wrk rounds per side, alternating")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cold", type=int, default=3, help="cold starts after scale to zero")
    ap.add_argument("--binary")
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    ap.add_argument("--out", default=str(ROOT / "bench/proxy-results"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (scripts/setup.sh)")

    if args.url:
        if not args.key:
            raise SystemExit("--key is needed with --url")
        api, cleanup, binary = API(args.url, args.key), (lambda: None), "(running appliance)"
    else:
        api, cleanup, binary = own_appliance(args)
    rid, path = args.resource, args.path
    results = {"host": platform.node(), "cpus": os.cpu_count(), "binary": binary, "path": path,
               "wrk": {"seconds": args.seconds, "connections": args.connections, "threads": args.threads, "rounds": args.rounds}}
    try:
        first, status, _ = timed_get(api, f"/r/{rid}{path}")
        if status != 200:
            raise SystemExit(f"first request: {status}")
        log(f"first request (VM created and booted): {first:.2f} s")
        results["first_request_s"] = first
        address = guest_address(api, rid)
        direct_url, proxy_url = f"http://{address}:8080{path}", f"{api.url}/r/{rid}{path}"
        log(f"direct {direct_url}  proxy {proxy_url}")
        with KeepAwake(api, f"/r/{rid}{path}"):
            wrk(direct_url, 2, args.connections, args.threads)  # warm both paths
        wrk(proxy_url, 2, args.connections, args.threads, api.key)
        direct, proxy = [], []
        for r in range(args.rounds):
            with KeepAwake(api, f"/r/{rid}{path}"):
                direct.append(wrk(direct_url, args.seconds, args.connections, args.threads))
            proxy.append(wrk(proxy_url, args.seconds, args.connections, args.threads, api.key))
            log(f"round {r + 1}: direct {direct[-1]['rps']:.0f} req/s p99 {direct[-1]['p99_ms']:.1f} ms; "
                f"proxy {proxy[-1]['rps']:.0f} req/s p99 {proxy[-1]['p99_ms']:.1f} ms")
        results["direct"], results["proxy"] = direct, proxy

        colds, stops = [], []
        for c in range(args.cold):
            t0 = time.monotonic()
            while (resource(api, rid).get("vm") or {}).get("status") != "stopped":
                if time.monotonic() - t0 > 300:
                    raise SystemExit("the VM did not stop when idle")
                time.sleep(0.2)
            stops.append(time.monotonic() - t0)
            took, status, body = timed_get(api, f"/r/{rid}{path}")
            if status != 200:
                raise SystemExit(f"cold request: {status} {body[:200]!r}")
            colds.append(took)
            log(f"cold start {c + 1}: {took:.2f} s (stopped {stops[-1]:.1f} s after the last request)")
        results["cold_start_s"], results["stopped_after_s"] = colds, stops
    finally:
        cleanup()

    med = lambda xs, k: statistics.median(x[k] for x in xs)
    rows = [
        ("requests/s (median of rounds)", med(direct, "rps"), med(proxy, "rps"), med(proxy, "rps") / med(direct, "rps")),
        ("p50 latency ms", med(direct, "p50_ms"), med(proxy, "p50_ms"), med(proxy, "p50_ms") / med(direct, "p50_ms")),
        ("p99 latency ms", med(direct, "p99_ms"), med(proxy, "p99_ms"), med(proxy, "p99_ms") / med(direct, "p99_ms")),
    ]
    lines = ["| metric | direct to guest | through /r/{id}/ | proxy / direct |", "|---|---|---|---|"]
    lines += [f"| {name} | {d:.1f} | {p:.1f} | {ratio:.2f} |" for name, d, p, ratio in rows]
    lines.append(f"| cold start after scale to zero, s (median of {len(colds)}) | - | {statistics.median(colds):.2f} | - |")
    lines.append(f"| first request, VM created, s | - | {first:.2f} | - |")
    table = "\n".join(lines)
    print(table)
    results["table"] = [{"metric": n, "direct": d, "proxy": p, "ratio": r} for n, d, p, r in rows]
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# Smart proxy benchmark\n\n`{' '.join(sys.argv)}` on {results['host']} ({results['cpus']} cores), "
        f"{binary}, guest under TCG, wrk -t{args.threads} -c{args.connections} {args.seconds} s x {args.rounds} rounds per side, "
        f"GET {path} (busybox httpd in the test image).\n\n{table}\n")
    log(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
