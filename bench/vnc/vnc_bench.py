#!/usr/bin/env python3
"""VNC bridge benchmark: `appliance vnc-proxy` (the bridge's real relay) against websockify
(Debian's package) and a direct unix-socket connection, on loopback, in one run.

For each of direct (the ceiling), floor_relay.c (the least a WebSocket relay can do: what loopback
TCP costs here), bridge and websockify:
  * single-viewer throughput: a fake VNC server streams raw 1024x64 FramebufferUpdates
    (256 KiB of a fixed pattern each) as fast as the socket takes them; the client frames every
    message and checks every byte. MB/s (10^6) of RFB bytes, median of --reps runs;
  * round trip: FramebufferUpdateRequest -> 1x1 update, p50/p99 (median over --reps runs);
  * --conns concurrent viewers (all connected first, then streaming together): aggregate MB/s,
    the proxy's CPU time (utime+stime over its process tree, /proc/PID/stat) per MB relayed,
    memory per connection ((VmRSS with every viewer streaming - VmRSS idle) / conns, also
    measured with the viewers connected but not yet streaming, and as PSS because websockify
    forks one process per connection whose pages are mostly shared).

Client, server and proxy share the machine's cores (nothing is pinned); each run records the
CPU share of all three (and of everything else) so that a saturated core or a disturbed run shows.
Builds the C tools (gcc) into the run's temporary folder and the appliance with
`swift build -c release --product appliance --scratch-path .build-bench` (if that fails, e.g. on
someone's work in progress, it benchmarks the previous binary and says so in the results).

Usage: bench/vnc/vnc_bench.py [--quick] [--skip-build | --appliance BIN] [--seconds 5] [--reps 3] [--conns 100]
                              [--candidate NAME='CMD {port} {unix}' ...]
Writes bench/vnc/RESULTS.md and bench/vnc/results.json and prints the table. --candidate adds a
column for another relay (e.g. a patched build of the bridge) started as CMD, with {port} and
{unix} replaced by the port to listen on (127.0.0.1) and the VNC socket.
"""
import argparse, datetime, json, os, platform, queue, shlex, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SWIFT = "/opt/swift/usr/bin/swift"
SCRATCH = ROOT / ".build-bench"
APPLIANCE = SCRATCH / "release" / "appliance"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STREAM_MSG = 16 + 1024 * 64 * 4  # one FramebufferUpdate of the stream server
RTT_MSG = 20  # the 1x1 update


def log(msg):
    print(f"[vnc-bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout.strip()


# ---------------------------------------------------------------------------------------- /proc

def tree(pid):
    """pid and all its descendants (websockify forks one child per connection)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_s(pid, reaped=False):
    """utime+stime of the process tree; with `reaped`, plus that of children already waited for
    (websockify's per-connection process for a run that starts and ends in the window)."""
    total = 0
    for p in tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if reaped else 0)
        except (OSError, IndexError):
            pass
    return total / TICK


def memory_kib(pid):
    """(VmRSS, Pss) summed over the process tree, KiB."""
    rss = pss = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


# ----------------------------------------------------------------------------------- processes

class Procs:
    """Every process this run starts, each in its own session so that killing its group also
    ends websockify's per-connection children. Stopped in reverse order by `close`."""

    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, cmd):
        out = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, p))
        return p

    def close(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
            try:  # children left in the group (websockify's) after the leader exited
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_connectable(addr, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} at start")
        fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        with socket.socket(fam) as s:
            try:
                s.connect(addr)
                return
            except OSError:
                time.sleep(0.05)
    raise SystemExit(f"{what} not reachable after {timeout}s")


# -------------------------------------------------------------------------------------- client

class Client:
    """One vnc_load_client run, its stdout read line by line with timeouts."""

    def __init__(self, target, args, timeout):
        self.deadline = time.time() + timeout
        self.p = subprocess.Popen([str(BIN / "vnc_load_client")] + target + args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(l) for l in self.p.stdout] + [self.lines.put(None)], daemon=True).start()

    def expect(self, prefix):
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, self.deadline - time.time()))
            except queue.Empty:
                line = None
            if line is None:
                self.kill()
                raise RuntimeError(f"client: no {prefix!r} line; stderr: {self.p.stderr.read()[-500:]}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def send(self, text):
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def result(self):
        r = json.loads(self.expect("RESULT"))
        try:
            self.p.wait(timeout=max(1, self.deadline - time.time()))
        except subprocess.TimeoutExpired:
            self.kill()
        r["exit"] = self.p.returncode
        if r.get("errors") or self.p.returncode:
            raise RuntimeError(f"client failed: {r}; stderr: {self.p.stderr.read()[-500:]}")
        return r

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def machine_busy_s():
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK  # minus idle, iowait; guest time is inside user


def stream_run(target, proxy_pid, server_pid, conns, seconds, warmup, gate_sample=None):
    """One stream measurement; CPU of proxy/server/client sampled between START and END. The
    client holds its connections open after END until the driver has sampled (--gate)."""
    c = Client(target["client"], ["stream", "--conns", str(conns), "--seconds", str(seconds), "--warmup", str(warmup),
                                  "--gate"], timeout=seconds + warmup + 90)
    try:
        ready = int(c.expect("READY"))
        if ready != conns:
            raise RuntimeError(f"only {ready}/{conns} viewers connected")
        extra = {}
        if gate_sample:
            time.sleep(1)  # let the proxy settle with every viewer connected, idle
            extra = gate_sample()
        c.send("go\n")
        c.expect("START")
        pids = {"proxy": proxy_pid, "server": server_pid, "client": c.p.pid}
        t0, busy0, cpu0 = time.time(), machine_busy_s(), {k: cpu_s(v) for k, v in pids.items() if v}
        c.expect("END")
        t1, busy1, cpu1 = time.time(), machine_busy_s(), {k: cpu_s(v) for k, v in pids.items() if v}
        mem = memory_kib(proxy_pid) if proxy_pid else None
        c.send("stop\n")
        r = c.result()
    finally:
        c.kill()
    r["cpu_s"] = {k: round(cpu1[k] - cpu0[k], 3) for k in cpu0}
    r["cpu_share"] = {k: round((cpu1[k] - cpu0[k]) / (t1 - t0), 3) for k in cpu0}  # 1.0 = one core
    # Busy time not charged to client, server or proxy: other tenants of the machine (builds,
    # VMs), kernel threads, and interrupt time the kernel does not charge to a task.
    r["cpu_share"]["other"] = round((busy1 - busy0 - sum(cpu1[k] - cpu0[k] for k in cpu0)) / (t1 - t0), 3)
    r["mem_streaming_kib"] = mem
    r.update(extra)
    # Framing sanity: the bytes counted are whole 256 KiB updates, give or take the one message
    # in flight per connection at each end of the window.
    if abs(r["bytes"] - r["messages"] * STREAM_MSG) > 2 * conns * STREAM_MSG:
        raise RuntimeError(f"bytes {r['bytes']} do not match {r['messages']} messages of {STREAM_MSG}")
    return r


def echo_run(target, server_pid, count, warmup):
    pids = {"proxy": target["pid_echo"], "server": server_pid}
    t0, busy0, cpu0 = time.time(), machine_busy_s(), {k: cpu_s(v, reaped=True) for k, v in pids.items() if v}
    c = Client(target["client_echo"], ["echo", "--count", str(count), "--warmup", str(warmup)], timeout=60)
    try:
        r = c.result()
    finally:
        c.kill()
    time.sleep(0.1)  # websockify reaps the connection's process
    t1, busy1, cpu1 = time.time(), machine_busy_s(), {k: cpu_s(v, reaped=True) for k, v in pids.items() if v}
    r["cpu_share"] = {k: round((cpu1[k] - cpu0[k]) / (t1 - t0), 3) for k in cpu0}
    r["cpu_share"]["client"] = round(r["client_cpu_s"] / (t1 - t0), 3)
    r["cpu_share"]["other"] = round((busy1 - busy0 - r["client_cpu_s"] - sum(cpu1[k] - cpu0[k] for k in cpu0)) / (t1 - t0), 3)
    return r


DISTURBED = 0.3  # cores busy with something else than client, server and proxy: measure again


def undisturbed(what, measure, tries=3):
    """Runs `measure` until the machine was quiet during it (other tenants of this machine run
    builds and VMs at times), at most `tries` times; keeps the least disturbed attempt."""
    best = None
    for attempt in range(1, tries + 1):
        r = measure()
        r["attempt"] = attempt
        if best is None or r["cpu_share"]["other"] < best["cpu_share"]["other"]:
            best = r
        if r["cpu_share"]["other"] <= DISTURBED:
            break
        log(f"  {what}: {r['cpu_share']['other']:.2f} cores busy elsewhere, measuring again")
    return best


# ---------------------------------------------------------------------------------------- main

def build(skip, bin_dir):
    """The C tools go to the run's temporary folder (gone afterwards); the appliance to .build-bench."""
    global BIN
    BIN = bin_dir
    BIN.mkdir()
    for name in ("fake_vnc_server", "vnc_load_client", "floor_relay"):
        run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(BIN / name), str(HERE / f"{name}.c")])
    note = None
    if not skip:
        log("swift build -c release --product appliance (incremental; first build takes ~15 min)")
        b = subprocess.run([SWIFT, "build", "-c", "release", "--product", "appliance", "--scratch-path", str(SCRATCH)],
                           cwd=ROOT, text=True, capture_output=True, timeout=3600)
        if b.returncode != 0:
            errors = [l for l in b.stdout.splitlines() + b.stderr.splitlines() if "error:" in l][:5]
            if not APPLIANCE.exists():
                raise SystemExit("swift build failed:\n" + "\n".join(errors))
            note = "swift build failed (work in progress in the tree?); benchmarked the previous binary"
            log(note + ":\n  " + "\n  ".join(errors))
    if not APPLIANCE.exists():
        raise SystemExit(f"{APPLIANCE} missing (run without --skip-build)")
    return note


def versions():
    def tryrun(cmd):
        try:
            return run(cmd, cwd=ROOT)
        except (OSError, subprocess.CalledProcessError):
            return "?"
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "swift": tryrun([SWIFT, "--version"]).splitlines()[0],
        "websockify": tryrun(["dpkg-query", "-W", "-f", "${Version}", "websockify"]),
        "websockify_python": tryrun(["/usr/bin/python3", "--version"]),
        "gcc": tryrun(["gcc", "-dumpfullversion"]),
        "git_head": tryrun(["git", "rev-parse", "--short", "HEAD"]),
        "tree_dirty": bool(tryrun(["git", "status", "--porcelain", "--", "Sources"])),
        "appliance_binary_mtime": datetime.datetime.fromtimestamp(APPLIANCE.stat().st_mtime, datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5, help="single-viewer stream window")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rtt-count", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--conc-seconds", type=float, default=10)
    ap.add_argument("--quick", action="store_true", help="1 rep, short windows (smoke test)")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--appliance", help="benchmark this appliance binary (implies --skip-build; default: the build in .build-bench)")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=CMD",
                    help="another relay to measure, CMD with {port} and {unix} placeholders")
    a = ap.parse_args()
    if a.appliance:
        global APPLIANCE
        APPLIANCE, a.skip_build = Path(a.appliance).resolve(), True
    if a.quick:
        a.seconds, a.reps, a.rtt_count, a.conc_seconds, a.conns = 2, 1, 1000, 3, min(a.conns, 20)
    if not (0 < a.seconds <= 60 and 0 < a.reps <= 10 and 0 < a.rtt_count <= 100000 and 0 < a.conns <= 1000
            and 0 < a.conc_seconds <= 120):
        raise SystemExit("argument out of range")

    tmp = Path(tempfile.mkdtemp(prefix="vnc-bench-"))
    procs = Procs(tmp)

    def on_signal(sig, frame):
        raise SystemExit(f"signal {sig}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        build_note = build(a.skip_build, tmp / "bin")
        info = versions()
        results = bench(a, procs, tmp)
    except BaseException:
        for log_file in sorted(tmp.glob("*.log")):  # the proxies' last words, before they go
            tail = log_file.read_text(errors="replace").splitlines()[-5:]
            if tail:
                log(f"{log_file.name}:\n    " + "\n    ".join(tail))
        raise
    finally:
        procs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results["info"] = info
    results["info"]["build_note"] = build_note
    results["params"] = vars(a)
    report(results, Path(a.out))


def bench(a, procs, tmp):
    sock = {m: str(tmp / f"{m}.sock") for m in ("stream", "echo")}
    server = {m: procs.start(f"server-{m}", [str(BIN / "fake_vnc_server"), m, sock[m]]) for m in sock}
    for m in sock:
        wait_connectable(sock[m], server[m], f"fake server ({m})")
    targets = {"direct": {"client": ["--unix", sock["stream"]], "client_echo": ["--unix", sock["echo"]],
                          "pid": None, "pid_echo": None}}
    proxies = [("floor", lambda port, s: [str(BIN / "floor_relay"), str(port), s]),
               ("bridge", lambda port, s: [str(APPLIANCE), "vnc-proxy", "--listen", f"127.0.0.1:{port}", "--unix-target", s])]
    for spec in a.candidate:
        name, _, template = spec.partition("=")
        proxies.append((name, lambda port, s, t=template: shlex.split(t.format(port=port, unix=s))))
    proxies.append(("websockify", lambda port, s: ["websockify", f"--unix-target={s}", f"127.0.0.1:{port}"]))
    for name, cmd in proxies:
        t = {}
        for m in sock:
            port = free_port()
            p = procs.start(f"{name}-{m}", cmd(port, sock[m]))
            wait_connectable(("127.0.0.1", port), p, f"{name} ({m})")
            t["client" if m == "stream" else "client_echo"] = ["--ws", f"127.0.0.1:{port}"]
            t["pid" if m == "stream" else "pid_echo"] = p.pid
        targets[name] = t
    names = list(targets)
    res = {n: {"stream": [], "echo": []} for n in names}

    # Repetitions interleave the targets so that drift (thermal, neighbours) hits all alike.
    for rep in range(a.reps):
        for n in names:
            log(f"stream x1 {n} rep {rep + 1}/{a.reps}")
            res[n]["stream"].append(undisturbed(f"stream x1 {n}", lambda: stream_run(
                targets[n], targets[n]["pid"], server["stream"].pid, 1, a.seconds, 1)))
            log(f"  {res[n]['stream'][-1]['mbps']:.0f} MB/s, cpu {res[n]['stream'][-1]['cpu_share']}")
    for rep in range(a.reps):
        for n in names:
            log(f"rtt {n} rep {rep + 1}/{a.reps}")
            res[n]["echo"].append(undisturbed(f"rtt {n}", lambda: echo_run(
                targets[n], server["echo"].pid, a.rtt_count, max(100, a.rtt_count // 10))))
            log(f"  p50 {res[n]['echo'][-1]['p50_us']} us, p99 {res[n]['echo'][-1]['p99_us']} us")
    def concurrent(n):
        pid = targets[n]["pid"]
        time.sleep(1)  # let the previous run's connections wind down
        idle = memory_kib(pid) if pid else None
        r = stream_run(targets[n], pid, server["stream"].pid, a.conns, a.conc_seconds, 2,
                       gate_sample=lambda: {"mem_connected_kib": memory_kib(pid) if pid else None,
                                            "procs_connected": len(tree(pid)) if pid else None})
        r["mem_idle_kib"] = idle
        return r

    for n in names:
        log(f"stream x{a.conns} {n}")
        r = res[n]["concurrent"] = undisturbed(f"stream x{a.conns} {n}", lambda: concurrent(n))
        log(f"  {r['mbps']:.0f} MB/s aggregate, cpu {r['cpu_share']}, mem idle/connected/streaming "
            f"{r['mem_idle_kib']}/{r.get('mem_connected_kib')}/{r['mem_streaming_kib']} KiB")
    return {"runs": res}


# -------------------------------------------------------------------------------------- report

LABELS = {"direct": "direct (ceiling)", "floor": "C relay (floor)"}


def summarize(results, conns):
    runs, s = results["runs"], {}
    PROXIES = [n for n in runs if n != "direct"]
    for n, r in runs.items():
        mb = [x["mbps"] for x in r["stream"]]
        med = sorted(r["stream"], key=lambda z: z["mbps"])[len(r["stream"]) // 2]
        c = r["concurrent"]
        x = {"mbps": statistics.median(mb), "mbps_runs": mb,
             "p50_us": statistics.median(e["p50_us"] for e in r["echo"]),
             "p99_us": statistics.median(e["p99_us"] for e in r["echo"]),
             "cpu_share_x1": med["cpu_share"], "conc_mbps": c["mbps"], "cpu_share_conc": c["cpu_share"],
             "conc_conn_min_mbps": c["conn_min_mbps"], "conc_conn_max_mbps": c["conn_max_mbps"]}
        if n in PROXIES:
            x["proxy_cpu_us_per_mb"] = c["cpu_s"]["proxy"] / (c["bytes"] / 1e6) * 1e6
            x["proxy_cpu_us_per_mb_x1"] = med["cpu_s"]["proxy"] / (med["bytes"] / 1e6) * 1e6
            (ri, pi), (rc, pc), (rs, ps) = c["mem_idle_kib"], c["mem_connected_kib"], c["mem_streaming_kib"]
            x.update(mem_idle_rss_kib=ri, mem_idle_pss_kib=pi,
                     kib_per_conn_streaming_rss=(rs - ri) / conns, kib_per_conn_streaming_pss=(ps - pi) / conns,
                     kib_per_conn_connected_rss=(rc - ri) / conns, kib_per_conn_connected_pss=(pc - pi) / conns,
                     procs_connected=c["procs_connected"])
        s[n] = x
    d, f, b, w = (s[k] for k in ("direct", "floor", "bridge", "websockify"))
    ratios = {
        "x1_mbps_bridge_over_websockify": b["mbps"] / w["mbps"],
        "x1_mbps_bridge_over_floor": b["mbps"] / f["mbps"],
        "x1_mbps_bridge_over_direct": b["mbps"] / d["mbps"],
        "conc_mbps_bridge_over_websockify": b["conc_mbps"] / w["conc_mbps"],
        "conc_mbps_bridge_over_floor": b["conc_mbps"] / f["conc_mbps"],
        "conc_mbps_bridge_over_direct": b["conc_mbps"] / d["conc_mbps"],
        "cpu_per_mb_bridge_over_websockify": b["proxy_cpu_us_per_mb"] / w["proxy_cpu_us_per_mb"],
        "cpu_per_mb_bridge_over_floor": b["proxy_cpu_us_per_mb"] / f["proxy_cpu_us_per_mb"],
    }
    for n in PROXIES:
        ratios[f"added_p50_us_{n}"] = s[n]["p50_us"] - d["p50_us"]
        ratios[f"added_p99_us_{n}"] = s[n]["p99_us"] - d["p99_us"]
    warnings = [f"{n} {kind} run was disturbed: {x['cpu_share']['other']:.2f} cores busy elsewhere"
                for n, r in runs.items() for kind, xs in (("1-viewer", r["stream"]), ("RTT", r["echo"]),
                                                          ("concurrent", [r["concurrent"]]))
                for x in xs if x["cpu_share"]["other"] > DISTURBED]
    if not d["mbps"] > 1.5 * max(s[n]["mbps"] for n in PROXIES):
        warnings.append("direct is not clearly faster than every proxy: the fake server or client may be the bottleneck")
    return s, ratios, warnings


def report(results, out):
    conns = results["params"]["conns"]
    s, r, warnings = summarize(results, conns)
    results["summary"], results["ratios"], results["warnings"] = s, r, warnings
    i, p = results["info"], results["params"]
    w = s["websockify"]
    COLUMNS = {n: LABELS.get(n, n) for n in results["runs"]}
    PROXIES = [n for n in COLUMNS if n != "direct"]

    def row(label, fmt, key=None, ratio=True, value=None):
        """One table row: a value per column, then bridge/websockify, bridge/floor, bridge/direct."""
        get = value or (lambda n: s[n].get(key))
        vals = {n: get(n) for n in COLUMNS}
        cells = [("–" if v is None else fmt(v)) for v in vals.values()]
        rs = []
        for other in ("websockify", "floor", "direct"):
            x, y = vals["bridge"], vals[other]
            rs.append(f"{x / y:.2f}" if ratio and isinstance(x, (int, float)) and isinstance(y, (int, float)) and y else "")
        return "| " + " | ".join([label] + cells + rs) + " |"

    n0 = lambda v: f"{v:,.0f}"
    n1 = lambda v: f"{v:.1f}"
    proxy = lambda key: (lambda n: s[n].get(key) if n in PROXIES else None)
    share = lambda key: (lambda n: " / ".join(f"{s[n][key].get(k, 0):.2f}" for k in ("client", "server", "proxy", "other")))
    mem = lambda k1, k2: (lambda n: f"{s[n][k1] / 1024:.1f} / {s[n][k2] / 1024:.1f}" if n in PROXIES else None)
    kib = lambda k1, k2: (lambda n: f"{s[n][k1]:,.0f} / {s[n][k2]:,.0f}" if n in PROXIES else None)
    lines = [
        "# VNC bridge benchmark",
        "",
        f"{i['date']} · {i['nproc']} CPUs ({i['cpu']}) · Linux {i['kernel']} · {i['swift']} · websockify {i['websockify']} "
        f"({i['websockify_python']}) · gcc {i['gcc']} · git {i['git_head']}{' + uncommitted Sources/' if i['tree_dirty'] else ''}"
        f" · appliance built {i['appliance_binary_mtime']}",
        "",
        "Loopback. A fake VNC server (C, unix socket) streams raw 1024x64 FramebufferUpdates (256 KiB of a fixed "
        "pattern) as fast as the socket takes them; the client (C) frames every message and compares every byte. "
        "bridge = `appliance vnc-proxy` (release build); C relay = `floor_relay.c`, the least work any WebSocket "
        "proxy must do (read, writev header + bytes; no parsing), i.e. what loopback TCP costs on this machine. "
        f"MB = 10^6 bytes of RFB payload. 1 viewer: {p['seconds']:g} s windows after 1 s warm-up, median of {p['reps']}. "
        f"RTT: FramebufferUpdateRequest -> 1x1 update, {p['rtt_count']} round trips, median of {p['reps']} runs' p50 / p99. "
        f"{conns} viewers: all connected first, then streaming together, {p['conc_seconds']:g} s after 2 s warm-up.",
        "",
        "| | " + " | ".join(COLUMNS.values()) + " | bridge / websockify | bridge / C relay | bridge / direct |",
        "|---|" + "---:|" * (len(COLUMNS) + 3),
        row("1 viewer, MB/s", n0, "mbps"),
        row(f"{conns} viewers, aggregate MB/s", n0, "conc_mbps"),
        row(f"{conns} viewers, slowest / fastest viewer MB/s", str, ratio=False,
            value=lambda n: f"{s[n]['conc_conn_min_mbps']:.1f} / {s[n]['conc_conn_max_mbps']:.1f}"),
        row("RTT p50, µs", n1, "p50_us"),
        row("RTT p99, µs", n1, "p99_us"),
        row("added RTT p50 vs direct, µs", n1, value=lambda n: r.get(f"added_p50_us_{n}")),
        row("added RTT p99 vs direct, µs", n1, value=lambda n: r.get(f"added_p99_us_{n}")),
        row(f"proxy CPU per MB, µs ({conns} viewers)", n0, value=proxy("proxy_cpu_us_per_mb")),
        row("proxy CPU per MB, µs (1 viewer)", n0, value=proxy("proxy_cpu_us_per_mb_x1")),
        row("proxy memory idle, RSS / PSS MiB", str, ratio=False, value=mem("mem_idle_rss_kib", "mem_idle_pss_kib")),
        row(f"memory per viewer, {conns} streaming, RSS / PSS KiB", str, ratio=False,
            value=kib("kib_per_conn_streaming_rss", "kib_per_conn_streaming_pss")),
        row(f"memory per viewer, {conns} connected idle, RSS / PSS KiB", str, ratio=False,
            value=kib("kib_per_conn_connected_rss", "kib_per_conn_connected_pss")),
        row("CPU share client / server / proxy / other, 1 viewer", str, ratio=False, value=share("cpu_share_x1")),
        row(f"CPU share client / server / proxy / other, {conns} viewers", str, ratio=False, value=share("cpu_share_conc")),
        "",
        "1-viewer runs, MB/s: " + "; ".join(f"{n} {', '.join(n0(x) for x in s[n]['mbps_runs'])}" for n in COLUMNS) + ".",
        "",
        f"Notes: {i['nproc']} cores shared by client, fake server and proxy; nothing is pinned. CPU shares are per "
        f"process tree over the measured window (1.00 = one core busy, {i['nproc']:.2f} = the whole machine), so a "
        "saturated core shows: a proxy near 1.00 is CPU-bound, and its MB/s is then about 10^6 / its CPU µs per MB; \"other\" is busy time charged to none of the three (other tenants of the machine, "
        "kernel threads, softirq time not charged to a task): well above ~0.1 means the run was disturbed. "
        "websockify forks one Python process per connection "
        f"({w['procs_connected']} processes with {conns} viewers): its memory is summed over the tree, where RSS "
        "counts the shared pages once per process and PSS splits them, so PSS is the fair per-viewer figure for it. "
        "Memory per viewer = (tree memory with every viewer connected - the idle proxy after the earlier runs) / viewers. "
        "Round trips on this VM are dominated by waking idle vCPUs (each hop between processes or threads), "
        "which is why even the direct connection takes tens of µs.",
    ]
    if i.get("build_note"):
        lines += ["", f"**{i['build_note']}**"]
    for wmsg in warnings:
        lines += ["", f"**Warning: {wmsg}**"]
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS.md").write_text(md)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(md)


if __name__ == "__main__":
    main()
