#!/usr/bin/env python3
"""Capture-job throughput with a pool of 2 TCG guests (issue 7), against the real binary.

Figures, in one run on one appliance:
  * jobs: N capture jobs (POST /v1/jobs) of pages served on the host; throughput (jobs/s from
    the first submit to the last job done) and per-job latency (createdAt -> finishedAt);
  * baseline: the same N pages captured the way a client would without the queue, through the
    batch API: prepare a batch of 1 with the page as homepage, lock, poll handle-status until
    the captured page is listed, release; two clients in parallel (one per VM).
The ratio is jobs/s over baseline pages/s.

Usage: bench/jobs_bench.py [--jobs 40] [--out bench/jobs-results]
Needs: root, libvirtd running, .build/debug/appliance (or --binary), images/test/out.
"""
import argparse, http.client, http.server, json, os, platform, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"<!doctype html><title>{self.path}</title><p>bench page {self.path}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class API:
    def __init__(self, port, key):
        self.port, self.key = port, key

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    ap.add_argument("--out", default=str(ROOT / "bench/jobs-results"))
    args = ap.parse_args()

    site_port = free_port()
    site = http.server.ThreadingHTTPServer(("127.0.0.1", site_port), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="jobs-bench-")
    os.chmod(work, 0o755)
    state = work + "/state"
    port = free_port()
    logf = open(work + "/appliance.log", "w")
    proc = subprocess.Popen([args.binary, "serve", "--state-dir", state, "--listen", f"127.0.0.1:{port}", "--accel", "tcg",
                             "--image", args.image, "--network", "user", "--log-level", "warning", "--memory", "256", "--vcpus", "1"],
                            stdout=logf, stderr=logf)
    instance = None
    try:
        deadline = time.time() + 30
        while not os.path.exists(state + "/admin.key") and time.time() < deadline:
            time.sleep(0.1)
        api = API(port, open(state + "/admin.key").read().strip())
        while True:
            try:
                api.call("GET", "/v1/pool")
                break
            except OSError:
                time.sleep(0.1)
        instance = api.call("GET", "/v1/pool")["instance"]
        api.call("PUT", "/v1/pool", {"min": 2, "max": 2, "lingerMs": 0})
        while sum(1 for vm in api.call("GET", "/v1/vms") if vm["state"] == "idle") < 2:
            time.sleep(0.5)
        log("2 idle VMs")
        base = f"http://10.0.2.2:{site_port}"

        # Jobs.
        started = time.time()
        submitted, ended = {}, {}
        for i in range(args.jobs):
            job = api.call("POST", "/v1/jobs", {"url": f"{base}/job/{i}", "timeoutMs": 60000})
            submitted[job["id"]] = time.time()
        # The API's timestamps have whole seconds: latency is measured here, polling every 20 ms.
        while True:
            jobs = [j for j in api.call("GET", "/v1/jobs?limit=1000") if j["id"] in submitted]
            now = time.time()
            for j in jobs:
                if j["state"] in ("done", "failed"):
                    ended.setdefault(j["id"], now)
            if len(ended) == len(submitted):
                break
            time.sleep(0.02)
        job_wall = time.time() - started
        done = [j for j in jobs if j["state"] == "done"]
        latencies = [ended[j["id"]] - submitted[j["id"]] for j in done]
        log(f"jobs: {len(done)}/{len(submitted)} done in {job_wall:.1f} s")

        # Baseline: the batch API, one client per VM.
        def worker(urls, out):
            for url in urls:
                t0 = time.time()
                batch = api.call("POST", "/prepare-batch/1/" + urllib.parse.quote(url, safe=""))
                handle = api.call("POST", f"/lock/{batch}")
                while True:
                    status = api.call("GET", f"/handle-status/{handle}")
                    if status.get("assigned") and status["vm"]["pages"]["count"] >= 1:
                        break
                    time.sleep(0.05)
                api.call("POST", f"/release/{handle}")
                api.call("POST", f"/cancel-batch/{batch}")
                out.append(time.time() - t0)

        urls = [f"{base}/batch/{i}" for i in range(args.jobs)]
        baseline = []
        started = time.time()
        threads = [threading.Thread(target=worker, args=(urls[k::2], baseline)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        base_wall = time.time() - started
        log(f"baseline: {len(baseline)} pages in {base_wall:.1f} s")

        result = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, TCG",
            "jobs": len(submitted), "jobs_done": len(done), "jobs_wall_s": round(job_wall, 2), "jobs_per_s": round(len(done) / job_wall, 2),
            "job_latency_p50_s": round(pct(latencies, 50), 2), "job_latency_p99_s": round(pct(latencies, 99), 2),
            "baseline_pages": len(baseline), "baseline_wall_s": round(base_wall, 2), "baseline_pages_per_s": round(len(baseline) / base_wall, 2),
            "baseline_latency_p50_s": round(pct(baseline, 50), 2), "baseline_latency_p99_s": round(pct(baseline, 99), 2),
        }
        result["ratio_jobs_over_baseline"] = round(result["jobs_per_s"] / result["baseline_pages_per_s"], 2)
        Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out + ".md").write_text(
            f"# Capture jobs with a pool of 2 TCG guests\n\n{result['date']}, {result['machine']}; `bench/jobs_bench.py --jobs {args.jobs}`.\n\n"
            "| way | pages | wall (s) | pages/s | latency p50 (s) | latency p99 (s) |\n|---|---|---|---|---|---|\n"
            f"| capture jobs (`POST /v1/jobs`) | {len(done)} | {result['jobs_wall_s']} | {result['jobs_per_s']} | {result['job_latency_p50_s']} | {result['job_latency_p99_s']} |\n"
            f"| batch API (prepare, lock, poll, release; 2 clients) | {len(baseline)} | {result['baseline_wall_s']} | {result['baseline_pages_per_s']} | {result['baseline_latency_p50_s']} | {result['baseline_latency_p99_s']} |\n\n"
            f"Ratio jobs/s over batch-API pages/s: **{result['ratio_jobs_over_baseline']}**. Job latency counts the time a job waits in the queue.\n")
        print(json.dumps(result))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        # The pool's domains outlive the process (by design: a restart adopts them).
        if instance:
            names = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True, text=True).stdout.split()
            for name in names:
                if name.startswith(f"vmcloud-{instance}-"):
                    subprocess.run(["virsh", "-c", "qemu:///system", "destroy", name], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
