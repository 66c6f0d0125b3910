#!/usr/bin/python3
"""The benchmark suite (`make bench`): runs the benchmarks of the earlier issues with short
settings, one after the other, and writes one table of their figures, bench/RESULTS.md and
bench/RESULTS.json (median, p99, the baseline each is measured against and the ratio), with the
date, git commit and machine.

It builds nothing: `make bench` builds the release binary and the test image first. Each
benchmark's own results file goes to a temporary folder (the committed per-benchmark results,
from full runs, stay as they are). A benchmark that fails or times out is recorded as failed with
its reason; the others still run, and the suite exits 1 at the end.

Usage: /usr/bin/python3 bench/suite.py [--only pool,vnc,audio,proxy,reconcile,jobs] [--timeout 900]
Needs: root, libvirtd, .build/release/appliance, images/test/out (see each script's --help).
"""
import argparse, datetime, json, os, platform, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / ".build/release/appliance")
PY = "/usr/bin/python3"


def log(msg):
    print(f"[suite] {msg}", file=sys.stderr, flush=True)


def p99(samples):
    """Nearest-rank p99 (with fewer than 100 samples it is the largest)."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, round(0.99 * (len(s) - 1))))] if s else None


def row(figure, value, unit, p99=None, baseline=None, base_value=None, ratio=None):
    if ratio is None and value is not None and base_value:
        ratio = value / base_value
    return {"figure": figure, "value": value, "p99": p99, "baseline": baseline, "baseline_value": base_value,
            "ratio": ratio, "unit": unit}


# ---------------------------------------------------------------------- the benchmarks
# Each: the command (given the folder for its results) and a function from its JSON to rows.

def pool_cmd(out):
    return [PY, "bench/pool_bench.py", "--binary", APP, "--boots", "3", "--locks", "300", "--vms", "4",
            "--out", f"{out}/pool"], f"{out}/pool.json"


def pool_rows(d):
    b, l, m = d["first_idle_s"], d["lock_ms"], d["memory_mib"]
    n = len(b["samples"]["appliance"])
    return [
        row(f"set-pool-size -> first idle VM (n={n})", b["appliance_median"], "s", p99(b["samples"]["appliance"]),
            "virsh create -> agent hello, by hand", b["by_hand_median"], b["ratio"]),
        row(f"lock latency (n={l['n']})", l["p50"], "ms", l["p99"], "GET /v1/pool, same connection",
            l["floor_get_pool_p50"], l["ratio_p50"]),
        row(f"appliance RSS with {m['vms']} idle VMs", m["appliance_rss_with_vms"], "MiB", None,
            "appliance RSS before the VMs", m["appliance_rss_before"]),
    ]


def vnc_cmd(out):
    return [PY, "bench/vnc/vnc_bench.py", "--appliance", APP, "--quick", "--out", f"{out}/vnc"], f"{out}/vnc/results.json"


def vnc_rows(d):
    s = d["summary"]
    b, w, direct = s["bridge"], s["websockify"], s["direct"]
    conns = d["params"]["conns"]
    return [
        row("single viewer throughput", b["mbps"], "MB/s", None, "websockify", w["mbps"]),
        row("single viewer throughput", b["mbps"], "MB/s", None, "direct unix socket", direct["mbps"]),
        row("round trip (p50)", b["p50_us"], "µs", b["p99_us"], "websockify", w["p50_us"]),
        row(f"{conns} viewers, aggregate throughput", b["conc_mbps"], "MB/s", None, "websockify", w["conc_mbps"]),
        row(f"{conns} viewers, proxy CPU per MB", b["proxy_cpu_us_per_mb"], "µs/MB", None, "websockify",
            w["proxy_cpu_us_per_mb"]),
        row("memory per connected viewer (PSS)", b["kib_per_conn_connected_pss"], "KiB", None, "websockify",
            w["kib_per_conn_connected_pss"]),
    ]


def audio_cmd(out):
    return [PY, "bench/audio/audio_bench.py", "--skip-build", "--quick", "--phases", "latency,cpu",
            "--out", f"{out}/audio"], f"{out}/audio/results.json"


def audio_rows(d):
    s = d["summary"]
    r, o = s["relay"], s.get("opusenc", {})
    rows = [row("click -> listener latency (WebSocket)", r["p50"], "ms", r["p99"], "parec | opusenc, tuned", o.get("p50"))]
    if s.get("relay-http", {}).get("p50") is not None:
        h = s["relay-http"]
        rows.append(row("click -> listener latency (HTTP Ogg)", h["p50"], "ms", h["p99"], "parec | opusenc, tuned", o.get("p50")))
    if s.get("ffmpeg", {}).get("p50") is not None:
        rows.append(row("click -> listener latency (WebSocket)", r["p50"], "ms", r["p99"], "ffmpeg, tuned", s["ffmpeg"]["p50"]))
    if s.get("opusenc-default", {}).get("p50") is not None:
        rows.append(row("click -> listener latency (WebSocket)", r["p50"], "ms", r["p99"], "parec | opusenc, default flags",
                        s["opusenc-default"]["p50"]))
    if s.get("floor", {}).get("p50") is not None:
        rows.append(row("click -> listener latency (WebSocket)", r["p50"], "ms", r["p99"], "raw parec capture (floor)",
                        s["floor"]["p50"]))
    if "cpu" in r:
        rows.append(row(f"CPU per stream ({d['params']['streams']} streams)", r["cpu"], "% of a core", None,
                        "parec | opusenc, tuned", o.get("cpu")))
    if "per_listener" in r:
        rows.append(row("CPU per extra listener", r["per_listener"], "% of a core", None,
                        "parec | opusenc (a pipeline per listener)", o.get("per_listener")))
    return rows


def proxy_cmd(out):
    return [PY, "bench/proxy_bench.py", "--binary", APP, "--seconds", "5", "--rounds", "2", "--cold", "2",
            "--out", f"{out}/proxy"], f"{out}/proxy.json"


def proxy_rows(d):
    med = lambda side, k: statistics.median(x[k] for x in d[side])
    n = len(d["proxy"])
    rows = [
        row(f"requests/s through /r/{{id}}/ (median of {n} wrk rounds)", med("proxy", "rps"), "req/s", None,
            "direct to the guest", med("direct", "rps")),
        row("request latency (wrk p50)", med("proxy", "p50_ms"), "ms", med("proxy", "p99_ms"), "direct to the guest",
            med("direct", "p50_ms")),
    ]
    if all("appliance_cpu_us_per_request" in x for x in d["proxy"]):
        rows.append(row("appliance CPU per proxied request", med("proxy", "appliance_cpu_us_per_request"), "µs"))
    colds = d["cold_start_s"]
    rows.append(row(f"cold start after scale to zero (n={len(colds)})", statistics.median(colds), "s", p99(colds),
                    "first request, VM created", d["first_request_s"]))
    return rows


def reconcile_cmd(out):
    return [APP, "bench", "reconcile", "--vms", "1000", "--passes", "30", "--kill", "100",
            "--out", f"{out}/reconcile"], f"{out}/reconcile/results.json"


def reconcile_rows(d):
    return [
        row(f"reconcile pass at {d['vms']} VMs, nothing to do", d["steadyPassMedianMs"], "ms", d["steadyPassP99Ms"],
            "store read + virDomainGetState per VM", d["baselinePassMedianMs"], d["ratioToBaseline"]),
        row(f"pass after {d['killed']} domains vanished", d["detectPassMs"], "ms"),
        row(f"until all {d['vms']} run again", d["replaceSeconds"], "s"),
        row(f"cold start of {d['vms']} VMs (libvirt test driver)", d["coldStartSeconds"], "s"),
    ]


def jobs_cmd(out):
    return [PY, "bench/jobs_bench.py", "--binary", APP, "--jobs", "30", "--out", f"{out}/jobs"], f"{out}/jobs.json"


def jobs_rows(d):
    return [
        row(f"capture jobs throughput ({d['jobs']} jobs, 2 VMs)", d["jobs_per_s"], "jobs/s", None,
            "batch API, 2 clients", d["baseline_pages_per_s"], d["ratio_jobs_over_baseline"]),
        row("capture job latency (p50)", d["job_latency_p50_s"], "s", d["job_latency_p99_s"], "batch API, 2 clients",
            d["baseline_latency_p50_s"]),
    ]


BENCHMARKS = {
    "pool": ("pool (issue 2): boot to idle, lock latency, memory", pool_cmd, pool_rows),
    "vnc": ("VNC bridge vs websockify vs direct (--quick)", vnc_cmd, vnc_rows),
    "audio": ("audio relay vs parec | opusenc (--quick, latency and CPU phases)", audio_cmd, audio_rows),
    "proxy": ("smart proxy vs direct", proxy_cmd, proxy_rows),
    "reconcile": ("reconciler at 1000 VMs", reconcile_cmd, reconcile_rows),
    "jobs": ("capture jobs vs batch API", jobs_cmd, jobs_rows),
}


# ---------------------------------------------------------------------- running

def run(name, cmd, timeout):
    """Runs cmd, its output prefixed on stderr, a heartbeat every 30 s; returns (ok, reason)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    tail, done = [], threading.Event()

    def heartbeat():
        while not done.wait(30):
            log(f"{name}: running, {time.monotonic() - start:.0f} s")
    threading.Thread(target=heartbeat, daemon=True).start()
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, 15))
    timer.start()
    try:
        for line in proc.stdout:
            print(f"  {name}| {line.rstrip()}", file=sys.stderr, flush=True)
            tail = (tail + [line.rstrip()])[-5:]
        rc = proc.wait()
    except BaseException:  # Ctrl-C or SIGTERM of the suite: the benchmark (own session) cleans up too
        os.killpg(proc.pid, 15)
        proc.wait()
        raise
    finally:
        timer.cancel()
        done.set()
    elapsed = time.monotonic() - start
    if elapsed >= timeout:
        return False, f"timed out after {timeout:.0f} s", elapsed
    if rc != 0:
        last = next((l for l in reversed(tail) if l.strip()), "")
        return False, f"exit {rc}: {last[:200]}", elapsed
    return True, "", elapsed


def sh(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), platform.machine())
    mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    kvm = "KVM available" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "no KVM (/dev/kvm missing or not usable)"
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "kernel": platform.release(),
            "accelerator": f"TCG (the benchmarks start guests with --accel tcg; {kvm})"}


def cpu_busy():
    """(busy, total) jiffies of the whole machine, /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def cell(text):
    """A table cell: a `|` in a name (a shell pipeline) would split it."""
    return str(text).replace("|", "\\|")


def markdown(res):
    m = res["machine"]
    lines = [
        "# vmcloud benchmark suite (`make bench`)", "",
        f"{res['date']}, git {res['git_commit']}{' (tree dirty)' if res['git_dirty'] else ''}; "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}; {m['accelerator']}.", "",
        f"Run took {res['seconds'] / 60:.1f} min with short settings (each script's flags below); the full runs of each "
        "benchmark, with more rounds, are in its own results file. "
        f"Machine CPU busy during the run (the benchmarks and anything else): {res['machine_busy_cores']:.2f} of {m['cores']} cores on average "
        f"(load average {res['loadavg_start']} at the start, {res['loadavg_end']} at the end).", "",
    ]
    if res.get("note"):
        lines += [res["note"], ""]
    lines += ["vmcloud is the median; p99 where the benchmark measures one (with fewer than 100 samples, the largest); "
              "ratio = vmcloud / baseline value (for latencies and CPU lower is better, for throughput higher).", "",
              "| benchmark | figure | vmcloud (median) | p99 | baseline (tool) | baseline value | ratio | unit |",
              "|---|---|---|---|---|---|---|---|"]
    for b in res["benchmarks"]:
        if b["status"] != "ok":
            lines.append(f"| {b['name']} | **FAILED**: {cell(b['reason'])} | - | - | - | - | - | - |")
        for r in b["rows"]:
            lines.append(f"| {b['name']} | {cell(r['figure'])} | {fmt(r['value'])} | {fmt(r['p99'])} | {cell(r['baseline'] or '-')} | "
                         f"{fmt(r['baseline_value'])} | {fmt(r['ratio'])} | {r['unit']} |")
    lines += ["", "| benchmark | status | took | command |", "|---|---|---|---|"]
    for b in res["benchmarks"]:
        lines.append(f"| {b['name']} | {b['status']} | {b['seconds']:.0f} s | `{' '.join(b['command'])}` |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset of " + ",".join(BENCHMARKS))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per benchmark before it counts as failed")
    ap.add_argument("--note", default="", help="a sentence for the table's header (e.g. what else ran on the machine)")
    ap.add_argument("--out", default=str(ROOT / "bench/RESULTS"), help="writes OUT.md and OUT.json")
    ap.add_argument("--render", action="store_true", help="runs nothing: rewrites OUT.md from OUT.json")
    a = ap.parse_args()
    if a.render:
        Path(a.out + ".md").write_text(markdown(json.loads(Path(a.out + ".json").read_text())))
        return
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(f"signal {sig}"))
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if not Path(APP).exists():
        raise SystemExit(f"{APP} missing: `make release` (or `make bench`)")

    tmp = tempfile.mkdtemp(prefix="vmcloud-suite-", dir="/var/tmp")
    for sub in ("vnc", "audio", "reconcile"):
        os.makedirs(f"{tmp}/{sub}")
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "git_commit": sh("git", "rev-parse", "--short", "HEAD"),
           "git_dirty": bool(sh("git", "status", "--porcelain", "--", "Sources", "bench")),
           "machine": machine(), "note": a.note, "loadavg_start": f"{os.getloadavg()[0]:.1f}", "benchmarks": []}
    t0, busy0 = time.monotonic(), cpu_busy()
    for i, name in enumerate(names, 1):
        title, make_cmd, to_rows = BENCHMARKS[name]
        cmd, json_path = make_cmd(tmp)
        log(f"[{i}/{len(names)}] {name}: {title}; suite elapsed {(time.monotonic() - t0) / 60:.1f} min")
        ok, reason, took = run(name, cmd, a.timeout)
        entry = {"name": name, "title": title, "command": [c.replace(str(ROOT) + "/", "") for c in cmd],
                 "status": "ok", "reason": "", "seconds": took, "rows": [], "raw": None}
        try:
            if not ok:
                raise RuntimeError(reason)
            entry["raw"] = json.loads(Path(json_path).read_text())
            entry["rows"] = to_rows(entry["raw"])
        except Exception as e:  # noqa: BLE001 - any failure becomes the benchmark's reason
            entry["status"], entry["reason"] = "failed", str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
        log(f"{name}: {entry['status']} in {took:.0f} s {entry['reason']}")
        res["benchmarks"].append(entry)
    busy1 = cpu_busy()
    res["seconds"] = time.monotonic() - t0
    res["machine_busy_cores"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * os.cpu_count()
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    shutil.rmtree(tmp, ignore_errors=True)

    Path(a.out + ".json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = markdown(res)
    Path(a.out + ".md").write_text(md)
    print(md)
    failed = [b["name"] for b in res["benchmarks"] if b["status"] != "ok"]
    log(f"wrote {a.out}.md and .json in {res['seconds'] / 60:.1f} min" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
