#!/usr/bin/python3
"""Opens a viewer URL in headless Chromium (Debian's chromium + chromium-driver, selenium) and
compares what noVNC draws with the VM's own screenshot.

usage: novnc_check.py VIEWER_URL SCREENSHOT_URL OUT_DIR [ADMIN_KEY]

The screenshot route is for admins: ADMIN_KEY goes with it as a bearer key.

Prints one JSON line with the comparison; saves the page, the canvas and the VM screenshot as
PNGs in OUT_DIR for a person to look at.
"""
import base64, io, json, sys, time, urllib.request

from PIL import Image, ImageChops, ImageStat
from viewer_driver import open_viewer, start_chromium

viewer_url, screenshot_url, out_dir = sys.argv[1:4]
admin_key = sys.argv[4] if len(sys.argv) > 4 else None

driver = start_chromium()
try:
    open_viewer(driver, viewer_url)
    # Let noVNC draw the first full update; the VM screen is static text.
    time.sleep(3)
    driver.save_screenshot(out_dir + "/page.png")
    data_url = driver.execute_script("return document.querySelector('#screen canvas').toDataURL('image/png')")
    canvas = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    css = driver.execute_script(
        "const r = document.querySelector('#screen canvas').getBoundingClientRect(); return [r.width, r.height]")
finally:
    driver.quit()

request = urllib.request.Request(screenshot_url, headers={"Authorization": f"Bearer {admin_key}"} if admin_key else {})
with urllib.request.urlopen(request, timeout=30) as response:
    shot = Image.open(io.BytesIO(response.read())).convert("RGB")
canvas.save(out_dir + "/canvas.png")
shot.save(out_dir + "/vm-screenshot.png")

same_size = canvas.size == shot.size
compared = canvas if same_size else canvas.resize(shot.size)
def differing_fraction(a, b):
    """Share of pixels whose grey-level difference exceeds 48 of 255."""
    return sum(1 for v in ImageChops.difference(a, b).convert("L").getdata() if v > 48) / (a.size[0] * a.size[1])


diff = ImageChops.difference(compared, shot).convert("L")
black = Image.new("RGB", shot.size)
print(json.dumps({
    "canvas_size": canvas.size, "screenshot_size": shot.size, "css_size": css,
    "mean_diff": ImageStat.Stat(diff).mean[0],
    "differing_fraction": differing_fraction(compared, shot),
    "screenshot_stddev": ImageStat.Stat(shot.convert("L")).stddev[0],
    # The same measure against a blank screen: how much a wrong picture would differ.
    "black_differing_fraction": differing_fraction(black, shot),
}))
