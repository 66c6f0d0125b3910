#!/usr/bin/env python3
"""Pool benchmarks for issue 2, against the real binary, libvirt and TCG guests.

Figures:
  * time from set-pool-size to the first idle VM, against booting the same image by hand
    (virsh create + waiting for the agent's hello on its socket): the ratio is the
    appliance's overhead;
  * lock latency p50/p99 over N locks on an already prepared batch, against the same server's
    cheapest read (GET /v1/pool) on the same keep-alive connection;
  * appliance memory (RSS) with 10 idle VMs.

Usage: bench/pool_bench.py [--boots 3] [--locks 1000] [--vms 10] [--out bench/pool-results]
Needs: root, libvirtd running, .build/debug/appliance (or --binary), images/test/out.
"""
import argparse, http.client, json, os, platform, shutil, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from vmcloud_api import admin_key, auth_headers

ROOT = Path(__file__).resolve().parent.parent


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class Appliance:
    def __init__(self, binary, image, state, extra=None):
        self.state = state
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(state + ".log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--state-dir", state, "--listen", f"127.0.0.1:{self.port}", "--accel", "tcg",
             "--image", image, "--network", "user", "--log-level", "warning"]
            + (extra or ["--memory", "256", "--vcpus", "1"]),
            stdout=self.log, stderr=self.log)
        self.conn = None
        # The admin key: in <state>/admin.key before the API listens; the same after a restart.
        self.key = None
        deadline = time.time() + 30
        while time.time() < deadline:
            self.key = self.key or admin_key(state)
            try:
                if self.key:
                    self.get("/v1/pool")
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise SystemExit("appliance did not start; see " + self.log.name)

    def request(self, method, path):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self.conn.request(method, path, headers=auth_headers(self.key))
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {body[:200]!r}")
        return body

    def get(self, path):
        return json.loads(self.request("GET", path) or "null")

    def live(self):
        return [v for v in self.get("/v1/vms") if v["state"] != "destroyed"]

    def wait(self, what, cond, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}")

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def virsh(*args, check=True):
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], check=check, capture_output=True, text=True).stdout


def boot_by_hand(image, workdir, index, memory=256, vcpus=1):
    """The baseline: what an operator does without the appliance, same image and XML shape."""
    name = f"bench-byhand-{os.getpid()}-{index}"
    overlay, sock, console = f"{workdir}/{name}.qcow2", f"{workdir}/{name}.sock", f"{workdir}/{name}.log"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", f"{image}/disk.qcow2", overlay], check=True)
    cmdline = open(f"{image}/cmdline").read().strip()
    xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>{memory}</memory><vcpu>{vcpus}</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{image}/vmlinuz</kernel><initrd>{image}/initrd.img</initrd><cmdline>{cmdline}</cmdline></os>
<features><acpi/></features><on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{overlay}'/><target dev='vda' bus='virtio'/></disk>
<interface type='user'><model type='virtio'/></interface>
<channel type='unix'><source mode='bind' path='{sock}'/><target type='virtio' name='org.vmcloud.agent.0'/></channel>
<serial type='file'><source path='{console}'/><target port='0'/></serial><graphics type='vnc' socket='{workdir}/{name}.vnc'/>
<video><model type='vga'/></video><memballoon model='none'/></devices></domain>"""
    path = f"{workdir}/{name}.xml"
    open(path, "w").write(xml)
    start = time.monotonic()
    virsh("create", path)
    try:
        s = socket.socket(socket.AF_UNIX)
        while True:
            try:
                s.connect(sock)
                break
            except OSError:
                time.sleep(0.02)
        s.sendall(b'{"type":"hello","v":1}\n')
        buf = b""
        while b'"hello"' not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("agent channel closed")
            buf += chunk
        return time.monotonic() - start
    finally:
        virsh("destroy", name, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--locks", type=int, default=1000)
    ap.add_argument("--vms", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench/pool-results"))
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="vmcloud-bench-", dir="/var/tmp")
    os.chmod(workdir, 0o777)
    app = Appliance(args.binary, args.image, workdir + "/state")
    prefix = f"vmcloud-{app.get('/v1/pool')['instance']}-"
    results = {}
    try:
        # 1. set-pool-size -> first idle VM, and the same boot by hand.
        appliance_boots, hand_boots = [], []
        for i in range(args.boots):
            app.request("POST", "/set-pool-size/0/0/0")
            app.wait("pool empty", lambda: not app.live())
            start = time.monotonic()
            app.request("POST", "/set-pool-size/1/1/0")
            app.wait("first idle VM", lambda: any(v["state"] == "idle" for v in app.live()))
            appliance_boots.append(time.monotonic() - start)
            app.request("POST", "/set-pool-size/0/0/0")
            app.wait("pool empty", lambda: not app.live())
            hand_boots.append(boot_by_hand(args.image, workdir, i))
            log(f"boot {i + 1}/{args.boots}: appliance {appliance_boots[-1]:.2f} s, by hand {hand_boots[-1]:.2f} s")
        results["first_idle_s"] = {"appliance_median": statistics.median(appliance_boots),
                                   "by_hand_median": statistics.median(hand_boots),
                                   "ratio": statistics.median(appliance_boots) / statistics.median(hand_boots),
                                   "samples": {"appliance": appliance_boots, "by_hand": hand_boots}}

        # 2. Lock latency on a prepared batch, and the server's floor on the same connection.
        app.request("POST", "/set-pool-size/1/1/600000")
        batch = app.request("POST", "/prepare-batch/1/http%3A%2F%2Fexample.test%2F").decode()
        app.wait("prepared VM", lambda: any(v["state"] == "prepared" for v in app.live()))
        locks, reads, handles = [], [], []
        for _ in range(args.locks):
            t = time.perf_counter()
            handles.append(app.request("POST", f"/lock/{batch}").decode())
            locks.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            app.request("GET", "/v1/pool")
            reads.append((time.perf_counter() - t) * 1000)
        results["lock_ms"] = {"p50": pct(locks, 50), "p99": pct(locks, 99), "n": len(locks),
                              "floor_get_pool_p50": pct(reads, 50), "floor_get_pool_p99": pct(reads, 99),
                              "ratio_p50": pct(locks, 50) / pct(reads, 50)}
        log(f"lock p50 {pct(locks, 50):.2f} ms p99 {pct(locks, 99):.2f} ms; GET /v1/pool p50 {pct(reads, 50):.2f} ms")

        # 3. Memory with N idle VMs.
        app.request("POST", f"/cancel-batch/{batch}")
        app.request("POST", f"/release/{handles[0]}")  # the one lock that got the VM
        idle_rss = app.rss_kib()
        app.request("POST", f"/set-pool-size/{args.vms}/{args.vms}/600000")
        app.wait(f"{args.vms} idle VMs", lambda: sum(v["state"] == "idle" for v in app.live()) == args.vms, timeout=600)
        time.sleep(2)
        rss = app.rss_kib()
        qemu = sum(int(l.split()[1]) for p in Path("/proc").glob("[0-9]*")
                   if (p / "cmdline").exists() and prefix in (p / "cmdline").read_bytes().decode(errors="ignore")
                   and "qemu-system" in (p / "cmdline").read_bytes().decode(errors="ignore")
                   for l in open(p / "status") if l.startswith("VmRSS:"))
        results["memory_mib"] = {"appliance_rss_with_vms": rss / 1024, "appliance_rss_before": idle_rss / 1024,
                                 "vms": args.vms, "qemu_rss_total": qemu / 1024}
        log(f"appliance RSS {rss / 1024:.1f} MiB with {args.vms} VMs (before: {idle_rss / 1024:.1f} MiB), QEMU total {qemu / 1024:.0f} MiB")
        app.request("POST", "/set-pool-size/0/0/0")
        app.wait("pool empty", lambda: not app.live(), timeout=120)
    finally:
        app.stop()
        for name in virsh("list", "--name", check=False).split():
            if name.startswith("bench-byhand-") or name.startswith(prefix):
                virsh("destroy", name, check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    results["machine"] = {"host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
                          "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "accel": "tcg"}
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    b, l, m = results["first_idle_s"], results["lock_ms"], results["memory_mib"]
    table = f"""# Pool benchmark ({results['machine']['date']}, {results['machine']['cpus']} CPUs, TCG)

| figure | appliance | baseline | ratio |
|---|---|---|---|
| set-pool-size -> first idle VM (median of {len(b['samples']['appliance'])}) | {b['appliance_median']:.2f} s | virsh create -> agent hello: {b['by_hand_median']:.2f} s | {b['ratio']:.2f} |
| lock latency p50 / p99 ({l['n']} locks) | {l['p50']:.2f} / {l['p99']:.2f} ms | GET /v1/pool: {l['floor_get_pool_p50']:.2f} / {l['floor_get_pool_p99']:.2f} ms | {l['ratio_p50']:.2f} (p50) |
| appliance RSS with {m['vms']} idle VMs | {m['appliance_rss_with_vms']:.1f} MiB | before the VMs: {m['appliance_rss_before']:.1f} MiB | - |
| QEMU RSS, all {m['vms']} guests | {m['qemu_rss_total']:.0f} MiB | | |
"""
    Path(args.out + ".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
