#!/usr/bin/env python3
"""Fault recovery figures for issue 6, against the real binary, libvirt and TCG guests.

  * a guest's QEMU killed (kill -9) under a pool of 2: time until the appliance records the VM
    as failed (libvirt's lifecycle event), and until the pool is back at 2 idle VMs; the
    baseline in the same run is a cold boot (set-pool-size from 0 to the first idle VM), which
    is what replacing a VM must at least cost;
  * the appliance killed (kill -9) with 2 idle VMs and a locked handle: time from the restart to
    the API answering, and to the store and libvirt agreeing again with the same VMs (adopted,
    not rebooted) and the handle still assigned.

Usage: bench/recovery_bench.py [--rounds 5] [--binary PATH] [--out bench/recovery-results]
Needs: root, libvirtd running, .build/debug/appliance (or --binary), images/test/out.
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pool_bench import ROOT, Appliance, log, pct, virsh  # noqa: E402


def idle(app):
    return [v for v in app.live() if v["state"] == "idle"]


def domains(prefix):
    return {n for n in virsh("list", "--name").split() if n.startswith(prefix)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--image", default=str(ROOT / "images/test/out"))
    ap.add_argument("--out", default=str(ROOT / "bench/recovery-results"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vmcloud-recovery-", dir="/var/tmp")
    os.chmod(work, 0o755)
    state = work + "/state"
    extra = ["--memory", "256", "--vcpus", "1", "--boot-timeout", "120", "--agent-timeout", "30"]
    app = Appliance(args.binary, args.image, state, extra)
    prefix = "vmcloud-" + app.get("/v1/pool")["instance"] + "-"
    cold, detect, replace, answer, agree = [], [], [], [], []
    try:
        for r in range(args.rounds):
            app.request("POST", "/set-pool-size/0/0/0")
            app.wait("no VMs", lambda: not app.live() and not domains(prefix), 120)
            t0 = time.monotonic()
            app.request("POST", "/set-pool-size/2/2/600000")
            app.wait("first idle", lambda: len(idle(app)) >= 1, 300)
            cold.append(time.monotonic() - t0)
            app.wait("two idle", lambda: len(idle(app)) == 2, 300)

            victim = idle(app)[0]
            subprocess.run(["pkill", "-KILL", "-f", f"guest={victim['domain']},"], check=True)
            t0 = time.monotonic()
            app.wait("VM failed", lambda: app.get(f"/v1/vms/{victim['id']}")["state"] in ("failed", "destroying", "destroyed"), 30)
            detect.append(time.monotonic() - t0)
            app.wait("pool back at 2", lambda: len(idle(app)) == 2 and victim["id"] not in [v["id"] for v in idle(app)], 300)
            replace.append(time.monotonic() - t0)
            log(f"round {r + 1}: cold boot {cold[-1]:.2f} s, crash noticed {detect[-1]:.3f} s, replaced {replace[-1]:.2f} s")

        batch = int(app.request("POST", "/prepare-batch/1/http%3A%2F%2Fexample.test%2F"))
        handle = int(app.request("POST", f"/lock/{batch}"))
        app.wait("lock assigned", lambda: app.get(f"/handle-status/{handle}")["assigned"], 120)
        for r in range(args.rounds):
            before = sorted(v["domain"] for v in app.live())
            app.proc.kill()
            app.proc.wait()
            t0 = time.monotonic()
            app = Appliance(args.binary, args.image, state, extra)
            answer.append(time.monotonic() - t0)
            app.wait("store and libvirt agree", lambda: sorted(v["domain"] for v in app.live()) == before
                     and domains(prefix) == set(before) and all(v["state"] in ("idle", "locked") for v in app.live()), 120)
            agree.append(time.monotonic() - t0)
            assert app.get(f"/handle-status/{handle}")["assigned"], "the handle kept its VM"
            log(f"restart {r + 1}: API answers after {answer[-1]:.2f} s, same {len(before)} VMs adopted after {agree[-1]:.2f} s")
        app.request("POST", f"/release/{handle}")
        app.request("POST", "/set-pool-size/0/0/0")
        app.wait("no VMs", lambda: not app.live(), 120)
    finally:
        app.stop()
        for name in domains(prefix):
            virsh("destroy", name, check=False)
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "rounds": args.rounds, "binary": args.binary,
        "cold_boot_s": cold, "crash_detect_s": detect, "crash_replace_s": replace,
        "restart_answer_s": answer, "restart_agree_s": agree,
    }
    rows = [
        ("kill -9 of a guest's QEMU -> VM recorded failed (pid watcher, libvirt event)", detect),
        ("kill -9 of a guest's QEMU -> pool back at 2 idle VMs", replace),
        ("baseline: cold boot, set-pool-size to the first idle VM", cold),
        ("kill -9 of the appliance -> restarted process answers the API", answer),
        ("kill -9 of the appliance -> same VMs adopted, store and libvirt agree", agree),
    ]
    md = [f"# Fault recovery ({result['date']}, {result['host']}, TCG, test image, {args.rounds} rounds)", "",
          "| figure | median | p99 | max |", "|---|---|---|---|"]
    for label, values in rows:
        md.append(f"| {label} | {med(values):.3f} s | {pct(values, 99):.3f} s | {max(values):.3f} s |")
    md.append("")
    md.append(f"Replacing a crashed VM takes {med(replace) / med(cold):.2f}x a cold boot of the same image in the same run "
              f"(detection {med(detect):.3f} s plus the replacement's boot).")
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
