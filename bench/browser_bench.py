#!/usr/bin/env python3
"""Browser image figures (issue 3), against the real binary, libvirt and a TCG browser VM.

  * image build time: cold (debootstrap included; --cold removes the cached root file system)
    or warm, and image sizes;
  * boot to homepage rendered: set-pool-size -> first idle VM (agent hello), then
    prepare-batch -> VM prepared (Chromium started, cookies set, homepage loaded);
  * reset time: release -> VM idle again (Chromium killed, profile wiped, restarted);
  * capture bytes per page (screenshot PNG + MHTML), from the pages list.
Baseline for boot: the same image booted by hand (virsh create -> agent hello).

Usage: bench/browser_bench.py [--build] [--cold] [--rounds 3] [--out bench/browser-results]
"""
import argparse, http.server, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pool_bench import Appliance, boot_by_hand, log, virsh  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE_STATE = ROOT / "images/browser"

PAGE = b"""<!doctype html><html><head><title>bench</title></head><body style="background:#c0ffee">
<h1>vmcloud browser benchmark</h1><p id=c></p><script>document.getElementById('c').textContent=document.cookie</script>
</body></html>"""


def serve_page():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/appliance"))
    ap.add_argument("--build", action="store_true", help="time `appliance image build` first")
    ap.add_argument("--cold", action="store_true", help="with --build: drop the cached root file system first")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench/browser-results"))
    args = ap.parse_args()
    results = {}

    if args.build:
        if args.cold:
            shutil.rmtree(IMAGE_STATE / "image-work", ignore_errors=True)
        start = time.monotonic()
        subprocess.run([args.binary, "image", "build", "--state-dir", str(IMAGE_STATE)], check=True,
                       stdout=subprocess.DEVNULL)
        results["image_build_s"] = {"seconds": time.monotonic() - start, "cold": args.cold}
        log(f"image build ({'cold' if args.cold else 'warm'}): {results['image_build_s']['seconds']:.1f} s")
    image = IMAGE_STATE / "image"
    results["image_mib"] = {name: (image / name).stat().st_size / 2**20 for name in ["disk.qcow2", "vmlinuz", "initrd.img"]}

    site = serve_page()
    homepage = f"http://10.0.2.2:{site.server_address[1]}/"
    workdir = tempfile.mkdtemp(prefix="vmcloud-bench-", dir="/var/tmp")
    os.chmod(workdir, 0o777)
    app = Appliance(args.binary, str(image), workdir + "/state",
                    extra=["--memory", "2048", "--vcpus", "2", "--boot-timeout", "600", "--agent-timeout", "300"])
    prefix = f"vmcloud-{app.get('/v1/pool')['instance']}-"
    boots, renders, resets, captures, by_hand = [], [], [], [], []
    try:
        for i in range(args.rounds):
            start = time.monotonic()
            app.request("POST", "/set-pool-size/1/1/3600000")
            app.wait("idle VM", lambda: any(v["state"] == "idle" for v in app.live()), timeout=600)
            boots.append(time.monotonic() - start)
            start = time.monotonic()
            batch = app.request("POST", "/prepare-batch/1/" + urllib.parse.quote(homepage, safe="")).decode()
            app.wait("prepared VM", lambda: any(v["state"] == "prepared" for v in app.live()), timeout=600)
            renders.append(time.monotonic() - start)
            handle = app.request("POST", f"/lock/{batch}").decode()
            app.wait("captured homepage", lambda: app.get(f"/v1/handles/{handle}/pages"), timeout=300)
            for page in app.get(f"/v1/handles/{handle}/pages"):
                captures.append((page["screenshotBytes"], page["mhtmlBytes"]))
            vm_id = app.get(f"/handle-status/{handle}")["vmid"]
            start = time.monotonic()
            app.request("POST", f"/release/{handle}")
            app.wait("VM reset", lambda: app.get(f"/v1/vms/{vm_id}")["state"] == "idle", timeout=600)
            resets.append(time.monotonic() - start)
            app.request("POST", f"/cancel-batch/{batch}")
            app.request("POST", "/set-pool-size/0/0/0")
            app.wait("pool empty", lambda: not app.live(), timeout=120)
            by_hand.append(boot_by_hand(str(image), workdir, i, memory=2048, vcpus=2))
            log(f"round {i + 1}: boot {boots[-1]:.1f} s (by hand {by_hand[-1]:.1f} s), homepage rendered {renders[-1]:.1f} s, "
                f"reset {resets[-1]:.1f} s, capture {captures[-1]}")
    finally:
        app.stop()
        for name in virsh("list", "--name", check=False).split():
            if name.startswith(prefix) or name.startswith("bench-byhand-"):
                virsh("destroy", name, check=False)
        site.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    med = statistics.median
    results.update({
        "boot_to_idle_s": {"appliance_median": med(boots), "by_hand_median": med(by_hand), "ratio": med(boots) / med(by_hand)},
        "prepare_to_rendered_s": {"median": med(renders), "samples": renders},
        "boot_to_rendered_s": med(boots) + med(renders),
        "reset_s": {"median": med(resets), "samples": resets},
        "capture_bytes_per_page": {"screenshot_median": med(c[0] for c in captures), "mhtml_median": med(c[1] for c in captures)},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(), "accel": "tcg",
    })
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    r = results
    build = r.get("image_build_s")
    table = f"""# Browser image benchmark ({r['date']}, {r['cpus']} CPUs, TCG, {args.rounds} rounds, medians)

| figure | value | baseline | ratio |
|---|---|---|---|
| image build | {f"{build['seconds']:.1f} s ({'cold' if build['cold'] else 'warm'})" if build else "not run"} | | |
| image size | disk.qcow2 {r['image_mib']['disk.qcow2']:.0f} MiB, vmlinuz {r['image_mib']['vmlinuz']:.1f} MiB, initrd {r['image_mib']['initrd.img']:.1f} MiB | | |
| set-pool-size -> idle (agent hello) | {r['boot_to_idle_s']['appliance_median']:.1f} s | virsh create -> hello: {r['boot_to_idle_s']['by_hand_median']:.1f} s | {r['boot_to_idle_s']['ratio']:.2f} |
| prepare-batch -> homepage rendered | {r['prepare_to_rendered_s']['median']:.1f} s | | |
| boot to homepage rendered | {r['boot_to_rendered_s']:.1f} s | | |
| reset (release -> idle) | {r['reset_s']['median']:.1f} s | | |
| capture per page | PNG {r['capture_bytes_per_page']['screenshot_median'] / 1024:.0f} KiB + MHTML {r['capture_bytes_per_page']['mhtml_median'] / 1024:.1f} KiB | | |
"""
    Path(args.out + ".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
