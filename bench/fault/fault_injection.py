#!/usr/bin/python3
"""Fault injection against the real `appliance` binary, libvirt and TCG guests.

Runs N random operations (lock, release, prepare-batch, cancel-batch, set-pool-size,
handle-status polls, and the destructive ones: kill -9 of the appliance, of a guest's QEMU and of
libvirtd) against a small pool of guests booted from the tiny test image, then lets the system
settle and checks six invariants twice: right after the operations, and again after every handle
is released and every batch cancelled ("drained"); then that every operation ran and that the
kills found something to kill. Each check prints PASS or FAIL; the last line is
`N passed, M failed`. Exit status 1 when a check fails (with --strict also on a
finding: an unexpected API error while everything is up, or the event log showing the reaper
removing files of a live VM).

Usage (as root, Python 3 stdlib only):
  /usr/bin/python3 bench/fault/fault_injection.py [--ops 500] [--seed S] [--deadline-minutes 25]
      [--report bench/fault/last-run.json] [--keep] [--keep-log] [--no-libvirtd-kill] ...

Needs: libvirtd + virtlogd (scripts/setup.sh), .build/debug/appliance (copied at start; waited
for if missing, never built here), images/test/out (waited for if missing).
"""
import argparse
import collections
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from vmcloud_api import admin_key, auth_headers  # noqa: E402
VIRSH = ["virsh", "-c", "qemu:///system"]

VM_TRANSITIONAL = {"pending", "booting", "preparing", "resetting", "destroying", "failed"}
VM_NOT_LIVE = {"destroyed", "failed", "destroying"}
VM_UP = {"idle", "preparing", "prepared", "locked", "resetting"}  # said hello, domain running
HANDLE_STATES = {"waiting", "assigned", "released", "cancelled", "lost"}
HANDLE_ENDED = {"released", "cancelled", "lost"}

# Relative weights of the operations (percent-ish). The destructive ones are rare.
WEIGHTS = {
    "lock": 24,
    "release": 20,
    "prepare-batch": 11,
    "cancel-batch": 6,
    "set-pool-size": 7,
    "handle-status": 9,
    "wait-assigned": 15.5,
    "kill-appliance": 3,
    "kill-qemu": 3,
    "kill-libvirtd": 1.5,
}

INVARIANTS = {
    1: "no VM in two handles (assigned handle <-> locked VM)",
    2: "no orphan domain (every domain of ours belongs to a live VM)",
    3: "store and libvirt agree (every live VM's domain runs)",
    4: "every handle in a legal state (and acknowledged releases/cancels survived)",
    5: "pool between min and max live VMs, appliance running",
    6: "store and guests agree (batch homepage applied in the guest, idle VMs reset clean)",
    7: "every up VM's IP is the NAT lease of its own MAC, no two VMs share one",
}
NOTABLE_EVENTS = ("vm.failed", "handle.lost", "vm.orphan", "libvirt.disconnected", "libvirt.reconnected",
                  "agent.rejected", "reaper.removed")

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def say(msg):
    print(f"[fault {now():7.1f}s] {msg}", flush=True)


def summary_stats(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(statistics.mean(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "median": round(statistics.median(values), 3)}


def run(cmd, timeout=30, check=False):
    """A subprocess with a timeout; returns CompletedProcess (never hangs, never raises on exit code)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, 124, e.stdout or "", (e.stderr or "") + "\n(timed out)")


def pids_matching(pattern):
    """Pids whose full command line contains `pattern` (pgrep -f, read only)."""
    r = run(["pgrep", "-f", "--", pattern], timeout=10)
    pids = []
    for line in r.stdout.split():
        try:
            pid = int(line)
        except ValueError:
            continue
        if pid != os.getpid():
            pids.append(pid)
    return pids


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HTTPResult:
    __slots__ = ("status", "body", "error")

    def __init__(self, status=None, body=b"", error=None):
        self.status, self.body, self.error = status, body, error

    @property
    def ok(self):
        return self.status == 200

    def json(self):
        return json.loads(self.body or b"null")

    def label(self):
        return f"http_{self.status}" if self.error is None else self.error


# Authorization: Bearer <admin key>, once Appliance.start has read <state>/admin.key (the same
# key across restarts on the same state dir).
API_HEADERS = {}


def api(port, method, path, timeout=30):
    """One request on a fresh connection, so that a refused connection is seen as such."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={**API_HEADERS, **({"Content-Length": "0"} if method == "POST" else {})})
        r = conn.getresponse()
        return HTTPResult(r.status, r.read())
    except ConnectionRefusedError:
        return HTTPResult(error="refused")
    except socket.timeout:
        return HTTPResult(error="timeout")
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        return HTTPResult(error="reset")
    except (OSError, http.client.HTTPException) as e:
        return HTTPResult(error=f"oserror:{type(e).__name__}")
    finally:
        conn.close()


class Appliance:
    """The appliance binary (a private copy) on a fixed state dir and port."""

    def __init__(self, binary, image, state, log_path, port, network, extra):
        self.binary, self.image, self.state, self.log_path, self.port, self.extra = binary, image, state, log_path, port, extra
        self.network = network
        self.proc = None
        self.expected_running = False

    def args(self):
        return [self.binary, "serve", "--state-dir", self.state, "--listen", f"127.0.0.1:{self.port}",
                "--accel", "tcg", "--image", self.image, "--network", self.network, "--log-level", "debug",
                "--memory", "256", "--vcpus", "1", "--boot-timeout", "120", "--agent-timeout", "30"] + self.extra

    def start(self, timeout=60):
        """Starts the process and waits until GET /v1/pool answers 200; returns seconds taken or None."""
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== fault_injection: starting appliance at +{now():.1f}s =====\n".encode())
            log.flush()
            t = time.monotonic()
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = t + timeout
        while time.monotonic() < deadline:
            if not API_HEADERS:  # written before the API listens
                API_HEADERS.update(auth_headers(admin_key(self.state)))
            r = api(self.port, "GET", "/v1/pool", timeout=5)
            if r.ok:
                self.expected_running = True
                return time.monotonic() - t
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.expected_running = False
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        self.expected_running = False
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def log_summary(self):
        """Warning/error lines of the appliance log, by level and message (metadata stripped)."""
        levels = collections.Counter()
        messages = collections.Counter()
        samples = collections.defaultdict(list)
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return {}
        for line in text.splitlines():
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[2] != "appliance:":
                continue
            levels[parts[1]] += 1
            if parts[1] in ("warning", "error", "critical"):
                msg = parts[3].rsplit("] ", 1)[-1] if "] " in parts[3] else parts[3]
                key = f"{parts[1]}: {msg[:160]}"
                messages[key] += 1
                if len(samples[key]) < 3:
                    samples[key].append(line[:600])
        return {"lines_by_level": dict(levels), "warnings_and_errors": dict(messages.most_common(40)),
                "samples": {k: samples[k] for k, _ in messages.most_common(40)}}

    def log_tail(self, lines=60):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def libvirt_answers():
    return run(VIRSH + ["version"], timeout=10).returncode == 0


def ensure_libvirt(timeout=60):
    """Starts virtlogd and libvirtd if they are not running; waits until virsh answers. Returns seconds."""
    t = time.monotonic()
    if not run(["pgrep", "-x", "virtlogd"], timeout=10).stdout.strip():
        run(["virtlogd", "-d"], timeout=30)
    if not run(["pgrep", "-x", "libvirtd"], timeout=10).stdout.strip():
        run(["libvirtd", "-d"], timeout=30)
    deadline = t + timeout
    while time.monotonic() < deadline:
        if libvirt_answers():
            return time.monotonic() - t
        time.sleep(0.1)
    return None


def domain_mac(domain, network="default"):
    """The MAC of the domain's interface on a libvirt network (libvirt picks it), None if none."""
    r = run(VIRSH + ["domiflist", domain], timeout=30)
    for line in r.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[1] == "network" and cols[2] == network:
            return cols[4]
    return None


def nat_leases(network="default"):
    """dnsmasq's leases on the network: {mac: ip}."""
    r = run(VIRSH + ["net-dhcp-leases", network], timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"virsh net-dhcp-leases failed: {r.stderr.strip()}")
    leases = {}
    for line in r.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[3] == "ipv4":
            leases[cols[2]] = cols[4].split("/")[0]
    return leases


def release_leases(macs, network="default"):
    """Hands leases back to dnsmasq (for domains this script destroys itself; the appliance does
    it for the ones it destroys): a run boots more guests than the network has addresses."""
    macs = {m for m in macs if m}
    if not macs or not os.path.exists("/usr/bin/dhcp_release"):
        return
    m = re.search(r"Bridge:\s+(\S+)", run(VIRSH + ["net-info", network], timeout=30).stdout)
    if not m:
        return
    for mac, ip in nat_leases(network).items():
        if mac in macs:
            run(["/usr/bin/dhcp_release", m.group(1), ip, mac], timeout=10)


def domains(prefix, running_only=False):
    r = run(VIRSH + ["list", "--name"] + ([] if running_only else ["--all"]), timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"virsh list failed: {r.stderr.strip()}")
    return sorted(n.strip() for n in r.stdout.splitlines() if n.strip().startswith(prefix))


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.deadline = T0 + args.deadline_minutes * 60
        self.lock = threading.Lock()
        self.ops_by_kind = collections.Counter()
        self.errors = collections.defaultdict(collections.Counter)  # kind -> status label -> n
        self.errors_phase = collections.defaultdict(collections.Counter)  # "up"/"recovering" -> label
        self.findings = []
        self.observations = []
        self.op_log = []
        self.batches = {}  # id -> {"size", "cancelled": bool (acknowledged cancel)}
        self.handles = {}  # id -> {"batch", "released": bool (acknowledged release)}
        self.homepage_n = 0
        self.pool_size = (args.min, args.max, 1000)
        self.last_fault_end = -1e9
        self.restart_answer = []
        self.restart_pool_at_min = []
        self.libvirtd_restart = []
        self.libvirt_reconnected = []
        self.watches = []  # recovery watches (dicts) served by the monitor thread
        self.watch_interrupted = collections.Counter()
        self.unexpected_exits = []
        self.restarts = collections.Counter()
        # Destructive ops that found something to kill (hit) or nothing (missed).
        self.kills = collections.defaultdict(lambda: {"hit": 0, "missed": 0})
        self.instance = None
        self.prefix = None
        self.appliance = None
        self.stop_monitor = threading.Event()
        self.events = {}
        self.last_event_seen = 0
        self.tmp = None
        self.log_path = None

    # ---------- bookkeeping ----------

    def record_error(self, kind, res, detail=""):
        label = res.label()
        phase = "recovering" if now() - self.last_fault_end < self.args.grace else "up"
        with self.lock:
            self.errors[kind][label] += 1
            self.errors_phase[phase][label] += 1
        finding = None
        if phase == "up":
            if res.error == "refused" and self.appliance.expected_running:
                finding = "connection refused while the appliance should be running"
            elif res.error in ("timeout", "reset"):
                finding = f"request {res.error} while everything is up"
            elif res.status is not None and res.status >= 500 and res.status not in (502, 503):
                finding = f"HTTP {res.status} while everything is up"
        if res.status is not None and 400 <= res.status < 500:
            finding = f"HTTP {res.status} for a request that should succeed"
        if finding:
            body = res.body[:300].decode(errors="replace") if res.body else ""
            self.findings.append({"at_s": round(now(), 2), "op": kind, "what": finding, "detail": detail, "body": body})
            say(f"FINDING: {kind} {detail}: {finding} {body}")

    def check_crash(self):
        """The appliance exited although nothing killed it: record, keep its log, restart it."""
        app = self.appliance
        if app.expected_running and app.proc is not None and app.proc.poll() is not None:
            code = app.proc.returncode
            tail = app.log_tail(40)
            self.unexpected_exits.append({"at_s": round(now(), 2), "returncode": code, "log_tail": tail})
            self.findings.append({"at_s": round(now(), 2), "op": "-", "what": f"appliance exited by itself (rc {code})",
                                  "detail": "", "body": tail[-2000:]})
            say(f"FINDING: appliance exited by itself with rc {code}; restarting it\n{tail}")
            app.expected_running = False
            self.restart_appliance(after_crash=True)

    # ---------- monitor thread: recovery times ----------

    def add_watch(self, label, condition, start=None):
        """A recovery time to measure in the background: from `start` until `condition()` holds.
        Any later fault interrupts it (its time would include that fault's recovery)."""
        self.interrupt_watches()
        with self.lock:
            self.watches.append({"label": label, "start": start or time.monotonic(), "cond": condition, "done": False})

    def interrupt_watches(self):
        with self.lock:
            for w in self.watches:
                if not w["done"]:
                    w["done"] = True
                    self.watch_interrupted[w["label"]] += 1

    def poll_events(self):
        """Collects the appliance's event log as it grows (it survives restarts: it is in the store)."""
        while True:
            r = api(self.appliance.port, "GET", f"/v1/events?after={self.last_event_seen}&limit=1000", timeout=10)
            if not r.ok:
                return
            batch = r.json()
            with self.lock:
                for e in batch:
                    self.events[e["id"]] = e
                if batch:
                    self.last_event_seen = max(self.last_event_seen, max(e["id"] for e in batch))
            if len(batch) < 1000:
                return

    def monitor(self):
        ticks = 0
        while not self.stop_monitor.wait(0.25):
            ticks += 1
            if ticks % 8 == 0:
                try:
                    self.poll_events()
                except Exception:
                    pass
            with self.lock:
                pending = [w for w in self.watches if not w["done"]]
            for w in pending:
                try:
                    ok = w["cond"]()
                except Exception:
                    ok = False
                elapsed = time.monotonic() - w["start"]
                with self.lock:
                    if w["done"]:
                        continue
                    if ok:
                        w["done"] = True
                        (self.restart_pool_at_min if w["label"] == "pool_at_min" else self.libvirt_reconnected).append(elapsed)
                    elif elapsed > 180:
                        w["done"] = True
                        self.watch_interrupted[w["label"] + "_timeout"] += 1

    def cond_pool_at_min(self):
        r = api(self.appliance.port, "GET", "/v1/vms", timeout=5)
        if not r.ok:
            return False
        with self.lock:
            lo = self.pool_size[0]
        return sum(v["state"] in VM_UP for v in r.json()) >= lo

    def cond_reconnected(self, after_id):
        def check():
            r = api(self.appliance.port, "GET", "/v1/events?limit=50", timeout=5)
            return r.ok and any(e["kind"] == "libvirt.reconnected" and e["id"] > after_id for e in r.json())
        return check

    # ---------- process control ----------

    def restart_appliance(self, after_crash=False):
        for attempt in range(3):
            took = self.appliance.start(timeout=60)
            if took is not None:
                self.restarts["appliance_after_crash" if after_crash else "appliance"] += 1
                if not after_crash:
                    self.restart_answer.append(took)
                self.add_watch("pool_at_min", self.cond_pool_at_min, start=time.monotonic() - took)
                return took
            tail = self.appliance.log_tail(40)
            self.findings.append({"at_s": round(now(), 2), "op": "restart", "what": f"appliance did not answer after restart (attempt {attempt + 1})",
                                  "detail": f"exit={self.appliance.proc.poll()}", "body": tail[-2000:]})
            say(f"FINDING: appliance did not come back (attempt {attempt + 1})\n{tail}")
            if self.appliance.running():
                self.appliance.kill9()
            time.sleep(2)
        raise RuntimeError("the appliance cannot be restarted")

    def last_event_id(self):
        r = api(self.appliance.port, "GET", "/v1/events?limit=1", timeout=10)
        if r.ok and r.json():
            return r.json()[0]["id"]
        return 0

    # ---------- operations ----------

    def open_batches(self):
        return [b for b, info in self.batches.items() if not info["cancelled"]]

    def op_prepare(self):
        size = self.rng.randint(1, 2)
        self.homepage_n += 1
        home = urllib.parse.quote(f"http://example.test/{self.homepage_n}", safe="")
        r = api(self.appliance.port, "POST", f"/prepare-batch/{size}/{home}")
        if r.ok:
            bid = int(r.json())
            self.batches[bid] = {"size": size, "cancelled": False}
            return r, f"size={size} -> batch {bid}"
        return r, f"size={size}"

    def op_lock(self):
        open_ = self.open_batches()
        cancelled = [b for b, i in self.batches.items() if i["cancelled"]]
        if cancelled and (not open_ or self.rng.random() < 0.05):
            bid = self.rng.choice(cancelled)
        elif open_:
            bid = self.rng.choice(open_)
        else:
            return None, "no batch"
        r = api(self.appliance.port, "POST", f"/lock/{bid}")
        if r.ok:
            hid = int(r.json())
            self.handles[hid] = {"batch": bid, "released": False}
            return r, f"batch {bid} -> handle {hid}"
        return r, f"batch {bid}"

    def op_release(self):
        if not self.handles:
            return None, "no handle"
        live = [h for h, i in self.handles.items() if not i["released"]]
        hid = self.rng.choice(live) if live and self.rng.random() < 0.75 else self.rng.choice(list(self.handles))
        r = api(self.appliance.port, "POST", f"/release/{hid}")
        if r.ok:
            self.handles[hid]["released"] = True
        return r, f"handle {hid}"

    def op_cancel(self):
        open_ = self.open_batches()
        if not self.batches:
            return None, "no batch"
        bid = self.rng.choice(open_) if open_ and self.rng.random() < 0.85 else self.rng.choice(list(self.batches))
        r = api(self.appliance.port, "POST", f"/cancel-batch/{bid}")
        if r.ok:
            self.batches[bid]["cancelled"] = True
        return r, f"batch {bid}"

    def op_set_pool_size(self):
        hi = self.rng.randint(0, self.args.max)
        lo = self.rng.randint(0, hi)
        linger = self.rng.randint(0, 5000)
        r = api(self.appliance.port, "POST", f"/set-pool-size/{lo}/{hi}/{linger}")
        if r.ok:
            with self.lock:
                self.pool_size = (lo, hi, linger)
        return r, f"{lo}/{hi}/{linger}"

    def pick_handle(self, prefer_unassigned=False):
        live = [h for h, i in self.handles.items() if not i["released"] and not self.batches[i["batch"]]["cancelled"]]
        if prefer_unassigned:
            unseen = [h for h in live if not self.handles[h].get("seen_assigned")]
            live = unseen or live
        if live:
            return self.rng.choice(live)
        return self.rng.choice(list(self.handles)) if self.handles else None

    def check_status_view(self, hid, st):
        if st.get("assigned"):
            self.handles[hid]["seen_assigned"] = True
            vm = st.get("vm") or {}
            if vm.get("handle") != hid or vm.get("state") != "locked" or vm.get("id") != st.get("vmid"):
                self.observations.append({"at_s": round(now(), 2), "handle": hid,
                                          "what": "handle-status assigned but VM not locked by it",
                                          "vm": {k: vm.get(k) for k in ("id", "state", "handle", "batch")}})

    def op_status(self):
        hid = self.pick_handle()
        if hid is None:
            return None, "no handle"
        r = api(self.appliance.port, "GET", f"/handle-status/{hid}")
        if r.ok:
            self.check_status_view(hid, r.json())
        return r, f"handle {hid}"

    def op_wait_assigned(self):
        """An application polling handle-status until its VM is ready (bounded): lets VMs boot and prepare."""
        hid = self.pick_handle(prefer_unassigned=True)
        bound = self.rng.uniform(1, self.args.wait_max_s)
        if hid is None:
            time.sleep(bound)
            return None, f"no handle, slept {bound:.1f}s"
        end = time.monotonic() + bound
        r = None
        while True:
            r = api(self.appliance.port, "GET", f"/handle-status/{hid}")
            if not r.ok:
                return r, f"handle {hid}"
            st = r.json()
            if st.get("assigned"):
                self.check_status_view(hid, st)
                return r, f"handle {hid} assigned vm {st.get('vmid')}"
            if time.monotonic() > end:
                return r, f"handle {hid} not assigned within {bound:.1f}s"
            time.sleep(0.3)

    def op_kill_appliance(self):
        self.interrupt_watches()
        pid = self.appliance.proc.pid
        self.appliance.kill9()
        time.sleep(self.rng.uniform(0, 0.5))
        took = self.restart_appliance()
        self.last_fault_end = now()
        self.kills["kill-appliance"]["hit"] += 1
        return None, f"pid {pid}, API answered after {took:.2f}s"

    def op_kill_qemu(self):
        try:
            names = domains(self.prefix, running_only=True)
        except RuntimeError as e:
            self.kills["kill-qemu"]["missed"] += 1
            return None, f"skipped: {e}"
        if not names:
            self.kills["kill-qemu"]["missed"] += 1
            return None, "skipped: no running domain"
        name = self.rng.choice(names)
        self.interrupt_watches()
        pattern = f"guest={name},"
        pids = [p for p in pids_matching(pattern) if pattern in cmdline(p) and "qemu-system" in cmdline(p)]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.last_fault_end = now()
        if not pids:
            self.kills["kill-qemu"]["missed"] += 1
            return None, f"skipped: {name} has no QEMU process any more (going away)"
        self.kills["kill-qemu"]["hit"] += 1
        self.restarts["qemu_killed"] += 1
        return None, f"{name} pids {pids}"

    def op_kill_libvirtd(self):
        pids = [int(p) for p in run(["pgrep", "-x", "libvirtd"], timeout=10).stdout.split()]
        self.kills["kill-libvirtd"]["hit" if pids else "missed"] += 1
        after = self.last_event_id()
        self.interrupt_watches()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in pids:  # wait until it is gone
            for _ in range(100):
                if not Path(f"/proc/{p}").exists():
                    break
                time.sleep(0.05)
        time.sleep(self.rng.uniform(0, 2))
        t = time.monotonic()
        run(["libvirtd", "-d"], timeout=30)
        if not run(["pgrep", "-x", "virtlogd"], timeout=10).stdout.strip():
            run(["virtlogd", "-d"], timeout=30)
        took = None
        while time.monotonic() - t < 60:
            if libvirt_answers():
                took = time.monotonic() - t
                break
            time.sleep(0.1)
        if took is None:
            self.findings.append({"at_s": round(now(), 2), "op": "kill-libvirtd", "what": "libvirtd did not answer within 60 s of its restart",
                                  "detail": "", "body": ""})
            took = ensure_libvirt(60) or -1
        self.libvirtd_restart.append(took)
        self.restarts["libvirtd"] += 1
        self.add_watch("libvirt_reconnected", self.cond_reconnected(after), start=t)
        self.last_fault_end = now()
        return None, f"pids {pids}, virsh answered after {took:.2f}s"

    OPS = {
        "lock": op_lock, "release": op_release, "prepare-batch": op_prepare, "cancel-batch": op_cancel,
        "set-pool-size": op_set_pool_size, "handle-status": op_status, "wait-assigned": op_wait_assigned,
        "kill-appliance": op_kill_appliance, "kill-qemu": op_kill_qemu, "kill-libvirtd": op_kill_libvirtd,
    }

    def choose(self):
        weights = dict(WEIGHTS)
        for spec in self.args.weight:
            k, _, w = spec.partition("=")
            weights[k] = float(w)
        if self.args.no_libvirtd_kill:
            weights.pop("kill-libvirtd")
        if self.args.no_appliance_kill:
            weights.pop("kill-appliance")
        if self.args.no_qemu_kill:
            weights.pop("kill-qemu")
        kinds = list(weights)
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind == "lock" and not self.open_batches():
            kind = "prepare-batch"
        if kind in ("release", "handle-status") and not self.handles:
            kind = "lock" if self.open_batches() else "prepare-batch"
        if kind == "cancel-batch" and not self.batches:
            kind = "prepare-batch"
        return kind

    # ---------- settle and invariants ----------

    def snapshot(self, tries=3):
        port = self.appliance.port
        out = {}
        for key, path in (("pool", "/v1/pool"), ("vms", "/v1/vms"), ("handles", "/v1/handles"), ("batches", "/v1/batches")):
            for attempt in range(tries):
                r = api(port, "GET", path)
                if r.ok:
                    break
                if attempt + 1 == tries:
                    raise RuntimeError(f"GET {path}: {r.label()} {r.body[:200]!r}")
                time.sleep(2)
            out[key] = r.json()
        return out

    def settled_reason(self, s):
        """Why the system is not settled yet (None when it is)."""
        lo, hi = s["pool"]["min"], s["pool"]["max"]
        vms = s["vms"]
        busy = [f"vm{v['id']}:{v['state']}" for v in vms if v["state"] in VM_TRANSITIONAL]
        if busy:
            return "transitional VMs " + ",".join(busy)
        live = [v for v in vms if v["state"] not in VM_NOT_LIVE]
        free = [v for v in live if v["state"] == "idle" and v.get("batch") is None]
        if len(live) < lo:
            return f"{len(live)} live < min {lo}"
        if len(live) > hi and free:
            return f"{len(live)} live > max {hi} with {len(free)} free"
        owed = sum(max(0, b["size"] - b["granted"]) for b in s["batches"] if b["state"] == "open")
        if owed > len(free) and len(live) < hi:
            return f"batches owed {owed} VMs, {len(live)} live < max {hi}"
        if free and owed:
            return f"{len(free)} free VMs while batches are owed {owed}"
        if len(live) > lo and free and s["pool"]["lingerMs"] <= 30000:
            return f"{len(live)} live > min {lo}: free VMs {[v['id'] for v in free]} wait out linger {s['pool']['lingerMs']} ms"
        return None

    @staticmethod
    def lingered(s, slack=3.0):
        """Free idle VMs the planner should already have shed (idle past linger while above min)."""
        lo = s["pool"]["min"]
        live = [v for v in s["vms"] if v["state"] not in VM_NOT_LIVE]
        if len(live) <= lo:
            return []
        limit = s["pool"]["lingerMs"] / 1000 + slack
        t = datetime.datetime.now(datetime.timezone.utc)
        return [v["id"] for v in live if v["state"] == "idle" and v.get("batch") is None
                and (t - datetime.datetime.fromisoformat(v["stateSince"])).total_seconds() > limit]

    def settle(self, timeout):
        """Waits until nothing moves: 3 consecutive polls a second apart with nothing to do."""
        t = time.monotonic()
        stable = 0
        reason = "not polled"
        while time.monotonic() - t < timeout:
            self.check_crash()
            try:
                s = self.snapshot()
                reason = self.settled_reason(s)
            except Exception as e:
                reason = f"snapshot failed: {e}"
            stable = stable + 1 if reason is None else 0
            if stable >= 3:
                return True, time.monotonic() - t, None
            time.sleep(1)
        return False, time.monotonic() - t, reason

    def check_invariants(self, checkpoint, drained):
        """Returns {number: (passed, [details])}."""
        s = self.snapshot()
        vms, handles, batches, pool = s["vms"], s["handles"], s["batches"], s["pool"]
        vm_by_id = {v["id"]: v for v in vms}
        batch_by_id = {b["id"]: b for b in batches}
        handle_by_id = {h["id"]: h for h in handles}
        res = {}

        # 1. no VM in two handles; assigned handle <-> locked VM.
        bad = []
        assigned = [h for h in handles if h["state"] == "assigned"]
        vmids = [h.get("vmid") for h in assigned]
        dup = [v for v, n in collections.Counter(vmids).items() if n > 1]
        if dup:
            bad.append(f"VM(s) {dup} held by more than one assigned handle")
        for h in assigned:
            vm = vm_by_id.get(h.get("vmid"))
            if vm is None:
                bad.append(f"handle {h['id']} assigned to vm {h.get('vmid')} that is not live in the store")
            elif vm["state"] != "locked" or vm.get("handle") != h["id"]:
                bad.append(f"handle {h['id']} assigned to vm {vm['id']} which is {vm['state']} with handle {vm.get('handle')}")
        for v in vms:
            if v["state"] == "locked":
                h = handle_by_id.get(v.get("handle"))
                if h is None or h["state"] != "assigned" or h.get("vmid") != v["id"]:
                    bad.append(f"vm {v['id']} locked for handle {v.get('handle')} which is "
                               f"{h['state'] if h else 'unknown'} (vmid {h.get('vmid') if h else None})")
        res[1] = (not bad, bad or [f"{len(assigned)} assigned handles, {len(set(vmids))} distinct VMs"])

        # 2. no orphan domain.
        all_domains = domains(self.prefix)
        live_domains = {v["domain"]: v for v in vms if v["state"] not in VM_NOT_LIVE}
        orphans = [d for d in all_domains if d not in live_domains]
        bad = [f"domain {d} has no live VM in the store"
               + (f" (store: {[(v['id'], v['state']) for v in vms if v['domain'] == d]})" if any(v["domain"] == d for v in vms) else "")
               for d in orphans]
        res[2] = (not bad, bad or [f"{len(all_domains)} domains with prefix {self.prefix}, all belong to live VMs"])

        # 3. store and libvirt agree.
        running = set(domains(self.prefix, running_only=True))
        should_run = [v for v in vms if v["state"] not in VM_NOT_LIVE | {"pending"}]
        bad = [f"vm {v['id']} ({v['state']}) domain {v['domain']} not running in libvirt" for v in should_run if v["domain"] not in running]
        res[3] = (not bad, bad or [f"{len(should_run)} live VMs, every domain running"])

        # 4. handles in legal states (+ acknowledged transitions survived the faults).
        bad = []
        for h in handles:
            st = h["state"]
            if st not in HANDLE_STATES:
                bad.append(f"handle {h['id']} in unknown state {st!r}")
                continue
            b = batch_by_id.get(h["batch"])
            if b is None:
                bad.append(f"handle {h['id']} of unknown batch {h['batch']}")
            if st == "waiting" and (b is None or b["state"] != "open"):
                bad.append(f"handle {h['id']} waiting on batch {h['batch']} which is {b['state'] if b else 'unknown'}")
            if st == "assigned" and h.get("vmid") is None:
                bad.append(f"handle {h['id']} assigned without vmid")
            if st in HANDLE_ENDED and (h.get("vmid") is not None or h.get("vm") is not None):
                bad.append(f"handle {h['id']} {st} still shows vmid {h.get('vmid')}")
            if st in HANDLE_ENDED and not h.get("endedAt"):
                bad.append(f"handle {h['id']} {st} without endedAt")
            if st == "lost" and not h.get("reason"):
                bad.append(f"handle {h['id']} lost without a reason")
            if st == "waiting":
                spare = [v["id"] for v in vms if v["state"] == "prepared" and v.get("batch") == h["batch"] and v.get("handle") is None]
                if spare:
                    bad.append(f"handle {h['id']} waiting while VM(s) {spare} of its batch are prepared and unclaimed")
            if drained and st in ("waiting", "assigned"):
                bad.append(f"handle {h['id']} still {st} after every handle was released")
        for hid, info in self.handles.items():
            h = handle_by_id.get(hid)
            if h is None:
                bad.append(f"handle {hid} (returned by /lock) is missing from GET /v1/handles")
            elif info["released"] and h["state"] not in HANDLE_ENDED:
                bad.append(f"handle {hid} was released (200) but is {h['state']}")
        for bid, info in self.batches.items():
            b = batch_by_id.get(bid)
            if b is None:
                bad.append(f"batch {bid} (returned by /prepare-batch) is missing from GET /v1/batches")
            elif info["cancelled"] and b["state"] != "cancelled":
                bad.append(f"batch {bid} was cancelled (200) but is {b['state']}")
        # The seed's handle-status must agree with /v1/handles.
        for h in handles:
            r = api(self.appliance.port, "GET", f"/handle-status/{h['id']}")
            if not r.ok:
                bad.append(f"handle-status/{h['id']}: {r.label()}")
                continue
            st = r.json()
            if bool(st.get("assigned")) != (h["state"] == "assigned") or (st.get("assigned") and st.get("vmid") != h.get("vmid")):
                bad.append(f"handle-status/{h['id']} says {st.get('assigned')}/{st.get('vmid')} but /v1/handles says {h['state']}/{h.get('vmid')}")
        counts = collections.Counter(h["state"] for h in handles)
        res[4] = (not bad, bad or [f"{len(handles)} handles: {dict(counts)}; {len(batches)} batches"])

        # 5. pool size within bounds, appliance alive.
        bad = []
        lo, hi = pool["min"], pool["max"]
        want = self.final_size
        if (lo, hi, pool.get("lingerMs")) != want:
            bad.append(f"pool is {lo}/{hi}/{pool.get('lingerMs')}, set to {want}")
        live = [v for v in vms if v["state"] not in VM_NOT_LIVE]
        free = [v for v in live if v["state"] == "idle" and v.get("batch") is None]
        held = [v for v in live if v.get("batch") is not None]
        if len(live) < lo:
            bad.append(f"{len(live)} live VMs < min {lo}")
        if len(live) > hi and (drained or free):
            bad.append(f"{len(live)} live VMs > max {hi} ({len(free)} free, {len(held)} in batches)")
        stale = self.lingered(s, slack=10)
        if stale:
            bad.append(f"free VMs {stale} idle longer than linger ({pool['lingerMs']} ms) while {len(live)} > min {lo}")
        by_state = collections.Counter(v["state"] for v in live)
        if dict(by_state) != {k: n for k, n in pool.get("vms", {}).items() if n}:
            self.observations.append({"at_s": round(now(), 2), "what": f"{checkpoint}: /v1/pool vms {pool.get('vms')} vs /v1/vms {dict(by_state)}"})
        if not self.appliance.running():
            bad.append(f"appliance process not running (rc {self.appliance.proc.poll()})")
        if self.unexpected_exits:
            bad.append(f"appliance exited by itself {len(self.unexpected_exits)} time(s) during the run")
        res[5] = (not bad, bad or [f"{len(live)} live VMs {dict(by_state)} within {lo}..{hi}"
                                   + (f" (+{len(held)} held by batches)" if held and not drained else "")
                                   + f"; appliance pid {self.appliance.proc.pid} running"])
        # 6. store and guests agree: a VM in a batch runs its batch's homepage (as stored and as its
        # agent says live); a free idle VM was reset to a clean slate (its agent has no homepage).
        bad = []
        asked = 0
        for v in vms:
            if v["state"] in ("prepared", "locked"):
                b = batch_by_id.get(v.get("batch"))
                want = b["homepage"] if b else None
            elif v["state"] == "idle" and v.get("batch") is None:
                want = None
            else:
                continue
            if v["state"] != "idle" and v.get("homepage") != want:
                bad.append(f"vm {v['id']} ({v['state']}, batch {v.get('batch')}) stored homepage {v.get('homepage')!r}, batch wants {want!r}")
            r = api(self.appliance.port, "GET", f"/v1/vms/{v['id']}/agent", timeout=20)
            asked += 1
            if not r.ok:
                bad.append(f"vm {v['id']} ({v['state']}): agent query {r.label()} {r.body[:120]!r}")
            elif (r.json() or {}).get("homepage") != want:
                bad.append(f"vm {v['id']} ({v['state']}, batch {v.get('batch')}): guest agent has homepage "
                           f"{(r.json() or {}).get('homepage')!r}, expected {want!r}")
        res[6] = (not bad, bad or [f"{asked} guests asked live; homepages match their batches, idle ones are clean"])
        res[7] = self.check_leases(vms)
        return res, s

    def check_leases(self, vms):
        """Invariant 7 (NAT): every VM that said hello reports the address dnsmasq leased to its
        own domain's MAC (host-side truth, not the guest's word), and the addresses are distinct."""
        if self.args.network != "nat":
            return True, ["user networking: every guest is 10.0.2.15, nothing to compare"]
        bad = []
        leases = nat_leases()
        by_ip = collections.defaultdict(list)
        up = [v for v in vms if v["state"] in VM_UP]
        for v in up:
            mac = domain_mac(v["domain"])
            lease = leases.get(mac) if mac else None
            if mac is None:
                bad.append(f"vm {v['id']} ({v['state']}): domain {v['domain']} has no interface on the NAT network")
            elif lease is None:
                bad.append(f"vm {v['id']} ({v['state']}): no lease for its MAC {mac}")
            elif v.get("ip") != lease:
                bad.append(f"vm {v['id']} ({v['state']}) reports ip {v.get('ip')!r}, its MAC {mac} has lease {lease}")
            if v.get("ip"):
                by_ip[v["ip"]].append(v["id"])
        bad += [f"VMs {ids} all report {ip}" for ip, ids in by_ip.items() if len(ids) > 1]
        return not bad, bad or [f"{len(up)} up VMs, each on its own lease ({len(leases)} leases on the network)"]

    def drain(self):
        """Releases every handle and cancels every batch the store knows."""
        s = self.snapshot()
        for h in s["handles"]:
            if h["state"] in ("waiting", "assigned"):
                r = api(self.appliance.port, "POST", f"/release/{h['id']}")
                if r.ok:
                    if h["id"] in self.handles:
                        self.handles[h["id"]]["released"] = True
                else:
                    self.record_error("drain-release", r, f"handle {h['id']}")
        for b in s["batches"]:
            if b["state"] == "open":
                r = api(self.appliance.port, "POST", f"/cancel-batch/{b['id']}")
                if r.ok:
                    if b["id"] in self.batches:
                        self.batches[b["id"]]["cancelled"] = True
                else:
                    self.record_error("drain-cancel", r, f"batch {b['id']}")

    # ---------- main ----------

    def wait_for(self, what, cond, limit_s):
        t = time.monotonic()
        announced = False
        while not cond():
            if time.monotonic() - t > limit_s or time.monotonic() > self.deadline - 60:
                raise SystemExit(f"gave up waiting for {what}")
            if not announced:
                say(f"waiting for {what} ...")
                announced = True
            time.sleep(10)

    def setup(self):
        a = self.args
        if os.geteuid() != 0:
            raise SystemExit("must run as root")
        self.wait_for(f"{a.binary}", lambda: os.access(a.binary, os.X_OK), a.wait_minutes * 60)
        self.wait_for(f"{a.image}/disk.qcow2 and initrd.img",
                      lambda: os.path.exists(f"{a.image}/disk.qcow2") and os.path.exists(f"{a.image}/initrd.img"),
                      a.wait_minutes * 60)
        took = ensure_libvirt(60)
        if took is None:
            raise SystemExit("libvirtd does not answer on qemu:///system (run scripts/setup.sh)")
        self.tmp = tempfile.mkdtemp(prefix="vmcloud-fault-", dir="/var/tmp")
        os.chmod(self.tmp, 0o755)
        self.log_path = self.tmp + ".log"
        binary = f"{self.tmp}/appliance"
        for attempt in range(30):  # the other engineer may be relinking it right now
            try:
                shutil.copy2(a.binary, binary)
                if run([binary, "--help"], timeout=30).returncode == 0:
                    break
            except OSError:
                pass
            time.sleep(10)
        else:
            raise SystemExit(f"cannot copy a working {a.binary}")
        st = os.stat(binary)
        head = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip()
        self.binary_info = {"source": a.binary, "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(st.st_mtime)),
                            "size": st.st_size, "git_head_at_start": head}
        extra = ["--no-audio"] if a.no_audio else []
        self.appliance = Appliance(binary, a.image, f"{self.tmp}/state", self.log_path, a.port or free_port(), a.network, extra)
        took = self.appliance.start(timeout=60)
        if took is None:
            raise SystemExit("appliance did not start:\n" + self.appliance.log_tail())
        r = api(self.appliance.port, "GET", "/v1/pool")
        self.instance = r.json()["instance"]
        self.prefix = f"vmcloud-{self.instance}-"
        say(f"appliance pid {self.appliance.proc.pid} on :{self.appliance.port}, instance {self.instance}, "
            f"state {self.tmp}/state, log {self.log_path} (answered in {took:.2f}s)")
        r = api(self.appliance.port, "POST", f"/set-pool-size/{a.min}/{a.max}/1000")
        if not r.ok:
            raise SystemExit(f"set-pool-size failed: {r.label()}")
        self.pool_size = (a.min, a.max, 1000)

    def cleanup(self, keep_log):
        self.stop_monitor.set()
        if self.appliance is not None:
            try:
                self.appliance.stop()
            except Exception as e:
                say(f"stopping the appliance: {e}")
        if self.prefix and not self.args.keep:
            if not libvirt_answers():
                ensure_libvirt(60)
            try:
                left = domains(self.prefix)
                macs = [domain_mac(d) for d in left]
                for d in left:
                    run(VIRSH + ["destroy", d], timeout=60)
                    run(VIRSH + ["undefine", d], timeout=30)  # transient domains: harmless no-op
                release_leases(macs)
            except Exception as e:
                say(f"destroying domains: {e}")
        if self.tmp and not self.args.keep:
            # A PulseAudio daemon the appliance adopted after a kill -9 outlives it: end the one
            # on this run's socket (by pid, only processes on our own state dir).
            pattern = f"socket={self.tmp}/state/audio/native"
            for p in pids_matching(pattern):
                if pattern in cmdline(p):
                    try:
                        os.kill(p, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            time.sleep(0.5)
            shutil.rmtree(self.tmp, ignore_errors=True)
            if not keep_log and self.log_path and os.path.exists(self.log_path):
                os.unlink(self.log_path)

    def execute(self):
        a = self.args
        report = {"seed": a.seed, "ops_requested": a.ops, "args": vars(a), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.final_size = (a.final_min, a.final_max, a.final_linger)
        settle_timeout = a.settle_timeout
        reserve = 2 * settle_timeout + 90
        failed = True
        keep_log = True
        try:
            self.setup()
            mon = threading.Thread(target=self.monitor, daemon=True)
            mon.start()
            ops_start = time.monotonic()
            done = 0
            stopped_early = None
            for i in range(a.ops):
                if time.monotonic() > self.deadline - reserve:
                    stopped_early = f"deadline: stopped after {done} ops"
                    say(stopped_early)
                    break
                self.check_crash()
                kind = self.choose()
                t = time.monotonic()
                try:
                    res, detail = self.OPS[kind](self)
                except RuntimeError as e:
                    stopped_early = f"op {kind} failed hard: {e}"
                    say(stopped_early)
                    break
                dt = time.monotonic() - t
                self.ops_by_kind[kind] += 1
                done += 1
                entry = {"i": i, "at_s": round(now(), 2), "op": kind, "detail": detail, "ms": round(dt * 1000, 1)}
                if res is not None:
                    entry["result"] = res.label()
                    if not res.ok:
                        self.record_error(kind, res, detail)
                self.op_log.append(entry)
                if kind.startswith("kill") or (i + 1) % 25 == 0 or (res is not None and not res.ok):
                    say(f"op {i + 1}/{a.ops} {kind} {detail} {entry.get('result', '')}")
                time.sleep(self.rng.uniform(0, a.sleep_ms / 1000))
            ops_s = time.monotonic() - ops_start
            report["ops_done"] = done
            report["stopped_early"] = stopped_early

            # Final pool size, settle, check; drain, settle, check again.
            self.check_crash()
            r = api(self.appliance.port, "POST", "/set-pool-size/{}/{}/{}".format(*self.final_size))
            if not r.ok:
                self.record_error("final-set-pool-size", r)
            with self.lock:
                self.pool_size = self.final_size
            timeout = max(30, min(settle_timeout, (self.deadline - time.monotonic() - 90) / 2))
            say(f"ops done ({done}) in {ops_s:.0f}s; final pool {self.final_size}; settling (up to {timeout:.0f}s)")
            ok1, t1, why1 = self.settle(timeout)
            say(f"settled: {ok1} after {t1:.1f}s" + (f" (still: {why1})" if why1 else ""))
            inv1, snap1 = self.check_invariants("after-ops", drained=False)
            self.print_checkpoint("after ops", inv1)
            self.drain()
            timeout = max(30, min(settle_timeout, self.deadline - time.monotonic() - 60))
            ok2, t2, why2 = self.settle(timeout)
            say(f"drained and settled: {ok2} after {t2:.1f}s" + (f" (still: {why2})" if why2 else ""))
            inv2, snap2 = self.check_invariants("after-drain", drained=True)
            self.print_checkpoint("after drain", inv2)
            self.stop_monitor.set()

            names = INVARIANTS
            invariants = []
            print()
            for n in names:
                passed = inv1[n][0] and inv2[n][0] and (n != 5 or (ok1 and ok2))
                extra = []
                if n == 5 and not ok1:
                    extra.append(f"after ops: did not settle within the bound: {why1}")
                if n == 5 and not ok2:
                    extra.append(f"after drain: did not settle within the bound: {why2}")
                invariants.append({"n": n, "name": names[n], "passed": passed,
                                   "after_ops": inv1[n][1], "after_drain": inv2[n][1], "notes": extra})
                print(f"{'PASS' if passed else 'FAIL'} {n}. {names[n]}")
                for line in (inv1[n][1] if not inv1[n][0] else []) + (inv2[n][1] if not inv2[n][0] else []) + extra:
                    print(f"       {line}")
            # The run itself: every operation asked for ran, and the kills found something to kill.
            for name, passed, lines in self.run_checks(done, stopped_early):
                invariants.append({"n": name, "name": name, "passed": passed, "notes": lines})
                print(f"{'PASS' if passed else 'FAIL'} {name}")
                for line in lines:
                    print(f"       {line}")
            npass = sum(i["passed"] for i in invariants)
            failed = npass != len(invariants)
            keep_log = failed or bool(self.unexpected_exits) or a.keep_log

            # Every event the appliance recorded during the run, by kind, and what they reveal.
            self.poll_events()
            all_events = [self.events[i] for i in sorted(self.events)]
            events = collections.Counter(e["kind"] for e in all_events)
            notable = [{k: e.get(k) for k in ("id", "at", "kind", "vm", "batch", "handle", "message")}
                       for e in all_events if e["kind"] in NOTABLE_EVENTS]
            failures = collections.Counter(re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'...'", e["message"]))[:140]
                                           for e in all_events if e["kind"] == "vm.failed")
            self.analyse_events(all_events)
            total_s = now()
            report.update({
                "instance": self.instance,
                "binary": getattr(self, "binary_info", None),
                "ops_by_kind": dict(self.ops_by_kind),
                "errors_by_kind": {k: dict(v) for k, v in self.errors.items()},
                "errors_by_phase": {k: dict(v) for k, v in self.errors_phase.items()},
                "findings": self.findings,
                "observations": self.observations[:200],
                "unexpected_exits": self.unexpected_exits,
                "restarts": dict(self.restarts),
                "kills": {k: dict(v) for k, v in self.kills.items()},
                "invariants": invariants,
                "settle": {"after_ops": {"settled": ok1, "seconds": round(t1, 1), "pending": why1},
                           "after_drain": {"settled": ok2, "seconds": round(t2, 1), "pending": why2}},
                "durations_s": {
                    "total": round(total_s, 1), "ops_phase": round(ops_s, 1),
                    "appliance_restart_to_api_answer": summary_stats(self.restart_answer),
                    "appliance_restart_to_pool_at_min": summary_stats(self.restart_pool_at_min),
                    "libvirtd_restart_to_virsh_answer": summary_stats(self.libvirtd_restart),
                    "libvirtd_restart_to_appliance_reconnected": summary_stats(self.libvirt_reconnected),
                    "recovery_watches_interrupted": dict(self.watch_interrupted),
                    "op_latency_ms_by_kind": {k: summary_stats([e["ms"] for e in self.op_log if e["op"] == k])
                                              for k in self.ops_by_kind},
                },
                "final_state": {"after_ops": {"vms": collections.Counter(v["state"] for v in snap1["vms"]),
                                              "handles": collections.Counter(h["state"] for h in snap1["handles"])},
                                "after_drain": {"vms": collections.Counter(v["state"] for v in snap2["vms"]),
                                                "handles": collections.Counter(h["state"] for h in snap2["handles"])}},
                "events_by_kind": dict(events),
                "vm_failures_by_reason": dict(failures.most_common()),
                "notable_events": notable[:300],
                "appliance_log": self.appliance.log_summary(),
                "log": self.log_path if keep_log or a.keep else None,
                "ops_log": self.op_log,
            })
            self.print_summary(report)
            self.write_report(report)
            print(f"{npass} passed, {len(invariants) - npass} failed")
            return 1 if failed or (a.strict and self.findings) else 0
        except BaseException as e:
            if isinstance(e, SystemExit) and not isinstance(e.code, int):
                say(f"aborted: {e.code}")
            else:
                say(f"aborted: {type(e).__name__}: {e}")
                traceback.print_exc()
            if self.appliance is not None:
                print(self.appliance.log_tail(40))
            report.update({"aborted": str(e) or type(e).__name__, "ops_by_kind": dict(self.ops_by_kind),
                           "findings": self.findings, "log": self.log_path, "ops_log": self.op_log})
            self.write_report(report)
            print(f"0 passed, {len(INVARIANTS)} failed")
            return 2
        finally:
            self.cleanup(keep_log=keep_log)
            if keep_log and self.log_path and os.path.exists(self.log_path):
                say(f"appliance log kept: {self.log_path}")
            if self.args.keep and self.tmp:
                say(f"kept: {self.tmp} (state), domains with prefix {self.prefix}")

    def analyse_events(self, events):
        """Findings the invariants cannot see because the system heals them: the reaper removing
        files of a VM that was live at that moment (between its vm.pending and its end)."""
        born, ended = {}, {}
        for e in events:
            vm = e.get("vm")
            if vm is None:
                continue
            if e["kind"] == "vm.pending":
                born.setdefault(vm, e["id"])
            if e["kind"] in ("vm.failed", "vm.destroying", "vm.destroyed"):
                ended.setdefault(vm, e["id"])
        for e in events:
            if e["kind"] != "reaper.removed":
                continue
            m = re.search(r"(?:/vms/vm|/run/vm|-vm)(\d+)(?:\.|:| )", e["message"])
            if not m:
                continue
            vm = int(m.group(1))
            if vm in born and born[vm] < e["id"] and e["id"] < ended.get(vm, float("inf")):
                later = next((x for x in events if x.get("vm") == vm and x["id"] > e["id"] and x["kind"] == "vm.failed"), None)
                self.findings.append({
                    "at_s": None, "op": "reaper", "what": f"reaper removed a file of VM {vm} while it was live "
                                                          f"(event #{e['id']} {e['at']}, VM pending since event #{born[vm]})",
                    "detail": e["message"], "body": (f"then #{later['id']} {later['message'][:300]}" if later else "")})

    def print_checkpoint(self, label, inv):
        for n in INVARIANTS:
            ok, details = inv[n]
            say(f"  [{label}] invariant {n}: {'ok' if ok else 'VIOLATED'}: {details[0] if ok else '; '.join(details[:10])}")

    def run_checks(self, done, stopped_early):
        """(name, passed, lines) for what the run itself must have done: all `--ops` operations,
        and destructive ops that mostly hit something (a kill of nothing checks nothing)."""
        a = self.args
        checks = [("ops: every operation asked for ran", done == a.ops,
                   [] if done == a.ops else [f"ran {done} of {a.ops}: {stopped_early}"])]
        hits = sum(v["hit"] for v in self.kills.values())
        missed = sum(v["missed"] for v in self.kills.values())
        share = missed / (hits + missed) if hits + missed else 0.0
        lines = [f"{k}: {v['hit']} hit, {v['missed']} found nothing" for k, v in sorted(self.kills.items())]
        passed = share <= a.max_missed_kills
        if not passed:
            lines.append(f"{share:.0%} of the kills found nothing to kill (at most {a.max_missed_kills:.0%} allowed)")
        # Each destructive kind that is on must have hit at least once in a run long enough to
        # expect it (about 7 libvirtd kills in 500 ops).
        if a.ops >= 200:
            enabled = [k for k, off in (("kill-appliance", a.no_appliance_kill), ("kill-qemu", a.no_qemu_kill),
                                        ("kill-libvirtd", a.no_libvirtd_kill)) if not off]
            for kind in enabled:
                if self.kills[kind]["hit"] == 0:
                    passed = False
                    lines.append(f"{kind} never hit anything in {a.ops} operations")
        checks.append((f"kills: at most {a.max_missed_kills:.0%} found nothing to kill, each kind hit", passed, lines))
        return checks

    def print_summary(self, r):
        d = r["durations_s"]
        print()
        print(f"seed {r['seed']}, {r['ops_done']} ops in {d['ops_phase']:.0f}s (total {d['total']:.0f}s)")
        print("ops by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(r["ops_by_kind"].items())))
        print(f"restarts: {r['restarts']}")
        errs = {f"{k}:{s}": n for k, v in r["errors_by_kind"].items() for s, n in v.items()}
        print(f"errors: {errs or 'none'}; by phase {r['errors_by_phase'] or {}}")
        for key in ("appliance_restart_to_api_answer", "appliance_restart_to_pool_at_min",
                    "libvirtd_restart_to_virsh_answer", "libvirtd_restart_to_appliance_reconnected"):
            st = d[key]
            print(f"{key}: " + (f"mean {st['mean']:.2f}s, max {st['max']:.2f}s (n={st['n']})" if st["n"] else "n=0"))
        if d["recovery_watches_interrupted"]:
            print(f"recovery watches interrupted by a later fault: {d['recovery_watches_interrupted']}")
        print(f"events: {r['events_by_kind']}")
        print("VM failures by reason: " + ("; ".join(f"{m} x{n}" for m, n in r["vm_failures_by_reason"].items()) or "none"))
        print("appliance log warnings/errors: " + (", ".join(f"{m} x{n}" for m, n in r["appliance_log"].get("warnings_and_errors", {}).items()) or "none"))
        print(f"findings: {len(r['findings'])}")
        for f in r["findings"][:30]:
            at = f"+{f['at_s']}s" if f["at_s"] is not None else "(event log)"
            print(f"  - {at} {f['op']}: {f['what']}: {f['detail'][:200]} {f['body'][:300]}")
        if r["observations"]:
            print(f"observations (racy reads, not failures): {len(r['observations'])}")

    def write_report(self, report):
        path = Path(self.args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=lambda o: dict(o) if isinstance(o, collections.Counter) else str(o)) + "\n")
        say(f"report written to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--deadline-minutes", type=float, default=25, help="the whole run stops by itself within this")
    ap.add_argument("--report", default=str(ROOT / "bench/fault/last-run.json"))
    ap.add_argument("--keep", action="store_true", help="keep state dir, log and domains")
    ap.add_argument("--strict", action="store_true", help="exit 1 on findings too (not only on failed invariants)")
    ap.add_argument("--max-missed-kills", type=float, default=0.25,
                    help="the share of kills that may find nothing to kill (no running domain, no libvirtd)")
    ap.add_argument("--keep-log", action="store_true", help="keep the appliance log even when everything passed")
    ap.add_argument("--no-libvirtd-kill", action="store_true")
    ap.add_argument("--no-appliance-kill", action="store_true")
    ap.add_argument("--no-qemu-kill", action="store_true")
    ap.add_argument("--no-audio", action="store_true", help="pass --no-audio to the appliance")
    ap.add_argument("--network", choices=["nat", "user"], default="nat",
                    help="serve --network: libvirt's NAT network (the serve default) or QEMU user mode")
    ap.add_argument("--min", type=int, default=2, help="initial pool min")
    ap.add_argument("--max", type=int, default=4, help="initial pool max, and the highest max set-pool-size picks")
    ap.add_argument("--final-min", type=int, default=2)
    ap.add_argument("--final-max", type=int, default=4)
    ap.add_argument("--final-linger", type=int, default=2000, help="ms")
    ap.add_argument("--sleep-ms", type=float, default=300, help="random sleep 0..this between ops")
    ap.add_argument("--wait-max-s", type=float, default=15, help="upper bound of a wait-assigned poll (uniform 1..this)")
    ap.add_argument("--weight", action="append", default=[], metavar="KIND=W", help="override an op's weight (debugging)")
    ap.add_argument("--grace", type=float, default=10, help="seconds after a fault in which errors count as 'recovering'")
    ap.add_argument("--settle-timeout", type=float, default=180)
    ap.add_argument("--wait-minutes", type=float, default=15, help="how long to wait for a missing binary/image")
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    for spec in args.weight:
        if spec.partition("=")[0] not in WEIGHTS:
            ap.error(f"--weight {spec}: kinds are {', '.join(WEIGHTS)}")
    if not (0 <= args.final_min <= args.final_max):
        ap.error("--final-min must be <= --final-max")
    say(f"seed {args.seed}, {args.ops} ops, deadline {args.deadline_minutes} min")

    r = Run(args)

    def on_term(signum, frame):
        raise SystemExit(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    # Last resort: whatever hangs, the process ends shortly after the deadline.
    def watchdog():
        time.sleep(max(0, r.deadline - time.monotonic()) + 120)
        print("[fault] watchdog: deadline exceeded by 120 s, killing the appliance and exiting", flush=True)
        try:
            if r.appliance is not None and r.appliance.running():
                os.kill(r.appliance.proc.pid, signal.SIGKILL)
        finally:
            os._exit(124)
    threading.Thread(target=watchdog, daemon=True).start()
    sys.exit(r.execute())


if __name__ == "__main__":
    main()
