#!/usr/bin/python3
"""Repro of the race found by fault_injection.py: the reaper's pass at start deletes the fresh
overlay (and audio sink) of a VM that the first reconcile pass boots at the same moment, so the
VM fails with "domain start failed: ... Cannot access storage file .../vms/vmN.qcow2".

Reaper.sweep() reads the live VMs from the store first, then asks libvirt for our domains, then
lists vms/ and run/: a VM inserted (and its overlay created) between the first read and the
listing is "gone" for the reaper.

Each attempt: pool 3/3 full, kill -9 the appliance, `virsh destroy` one of its domains, restart
on the same state dir (resync fails that VM, the first reconcile boots its replacement while the
start reaper pass runs). Hit in about 1 of 5 attempts on the 2-core build machine.
Exit 1 when reproduced, 0 when not within --attempts.

Usage (root): /usr/bin/python3 bench/fault/reaper_race_repro.py [--attempts 12]
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from vmcloud_api import admin_key, auth_headers  # noqa: E402
VIRSH = ["virsh", "-c", "qemu:///system"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=12)
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vmcloud-reaper-race-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    shutil.copy2(args.binary, tmp + "/appliance")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp + ".log"
    log = open(log_path, "ab")
    headers = {}  # the admin key, from <state>/admin.key once the appliance wrote it

    def call(path, method="GET", timeout=10):
        return urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers), timeout=timeout)

    def start():
        p = subprocess.Popen([tmp + "/appliance", "serve", "--state-dir", tmp + "/state", "--listen", f"127.0.0.1:{port}",
                              "--accel", "tcg", "--image", args.image, "--network", "user", "--log-level", "debug",
                              "--memory", "256", "--vcpus", "1", "--boot-timeout", "120", "--agent-timeout", "30"],
                             stdout=log, stderr=log)
        for _ in range(600):
            try:
                if not headers:  # written before the API listens
                    headers.update(auth_headers(admin_key(tmp + "/state")))
                return p, json.load(call("/v1/pool", timeout=2))
            except OSError:
                if p.poll() is not None:
                    raise SystemExit(f"appliance exited at start, see {log_path}")
                time.sleep(0.05)
        raise SystemExit(f"appliance did not answer, see {log_path}")

    def get(path):
        return json.load(call(path))

    def running(prefix):
        out = subprocess.run(VIRSH + ["list", "--name"], capture_output=True, text=True).stdout
        return [n for n in out.split() if n.startswith(prefix)]

    proc, pool = start()
    prefix = f"vmcloud-{pool['instance']}-"
    call("/set-pool-size/3/3/0", method="POST")
    hit = False
    last_event = 0
    try:
        for attempt in range(1, args.attempts + 1):
            end = time.time() + 180
            while sum(v["state"] == "idle" for v in get("/v1/vms")) < 3:
                if time.time() > end:
                    raise SystemExit("pool did not fill")
                time.sleep(0.5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            victim = running(prefix)[:1]
            for n in victim:
                subprocess.run(VIRSH + ["destroy", n], capture_output=True)
            proc, _ = start()
            time.sleep(6)
            events = [e for e in get("/v1/events?limit=300") if e["id"] > last_event]
            last_event = max([e["id"] for e in events] + [last_event])
            failed = [e for e in events if e["kind"] == "vm.failed" and "Cannot access storage file" in e["message"]]
            print(f"attempt {attempt}: destroyed {victim}; VMs failed for a missing overlay: {[e['vm'] for e in failed]}", flush=True)
            if failed:
                for e in sorted(events, key=lambda e: e["id"]):
                    if e["kind"] in ("vm.pending", "vm.failed", "reaper.removed"):
                        print(f"   {e['at']} #{e['id']} {e['kind']} vm={e.get('vm')}: {e['message'][:200]}")
                hit = True
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for n in running(prefix):
            subprocess.run(VIRSH + ["destroy", n], capture_output=True)
        pattern = f"socket={tmp}/state/audio/native"
        for p in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split():
            if pattern in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                os.kill(int(p), signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
        if hit:
            print(f"appliance log: {log_path}")
        else:
            os.unlink(log_path)
    print("REPRODUCED" if hit else f"not reproduced in {args.attempts} attempts")
    raise SystemExit(1 if hit else 0)


if __name__ == "__main__":
    main()
