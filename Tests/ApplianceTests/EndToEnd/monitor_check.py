#!/usr/bin/python3
"""Drives the monitor page in headless Chromium (Debian's chromium + chromium-driver, selenium).

usage: monitor_check.py BASE_URL ADMIN_KEY OUT_DIR

Steps, each reported in the one JSON line printed at the end (the Swift test judges them):
1. opens /static/monitor.html, types the admin key, waits for the live feed to list a VM;
2. sets the pool size to min 2 / max 2 in the form; then waits, without reloading, until the
   list shows a second VM (the one that boot brings) as idle;
3. saves the page as monitor.png and counts its colours, and those of the locked VM's thumbnail;
4. opens the first locked VM's screen through the page (a lock is made over the API here) and
   waits for the viewer to say connected.
"""
import io, json, sys, time, urllib.request

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, key, out_dir = sys.argv[1:4]
result = {}


def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait(what, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(what)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
monitor = lambda: driver.execute_script("return window.vmcloudMonitor")
try:
    driver.get(base + "/static/monitor.html")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait("the feed lists an idle VM", lambda: any(v["state"] == "idle" for v in monitor()["vms"]), 60)
    result["first_vms"] = monitor()["vms"]
    result["rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#vm-rows tr"))
    driver.execute_script("window.vmcloudMonitor.marker = 'not reloaded'")

    for field, value in [("pool-min", "2"), ("pool-max", "2"), ("pool-linger", "0")]:
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "pool-apply").click()
    result["pool_result"] = wait("the form reports the new size", lambda: driver.find_element(By.ID, "pool-result").text, 10)
    result["pool_after_form"] = call("GET", "/v1/pool")

    ready = lambda: [v for v in monitor()["vms"] if v["state"] == "idle"]
    wait("the list shows two idle VMs", lambda: len(ready()) >= 2, 75)
    result["second_vms"] = monitor()["vms"]
    result["rows_after_boot"] = len(driver.find_elements(By.CSS_SELECTOR, "#vm-rows tr"))
    result["not_reloaded"] = monitor().get("marker") == "not reloaded"
    result["snapshots"] = monitor()["snapshots"]

    # A locked VM's screen, opened the way the page's Screen button does (view-only).
    batch = call("POST", "/v1/batches", {"size": 1, "homepage": "http://example.test/"})
    handle = call("POST", f"/v1/batches/{batch['id']}/locks", {})
    vm = wait("the handle gets a VM", lambda: call("GET", f"/v1/handles/{handle['id']}").get("vmid"), 30)
    wait("the list shows the VM locked", lambda: any(v["id"] == vm and v["state"] in ("locked", "working") for v in monitor()["vms"]), 15)
    time.sleep(1.5)  # let a thumbnail or two arrive
    driver.save_screenshot(out_dir + "/monitor.png")
    page = Image.open(out_dir + "/monitor.png").convert("RGB")
    result["screenshot"] = out_dir + "/monitor.png"
    result["screenshot_colours"] = len(page.getcolors(1 << 24) or [])
    result["screenshot_size"] = page.size
    # The locked VM's own thumbnail: loaded from /v1/vms/ID/thumbnail.png, showing its screen.
    thumb = driver.find_element(By.CSS_SELECTOR, f'#vm-rows tr[data-vm="{vm}"] td.thumb img')
    natural = lambda: driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", thumb)
    wait("the VM's thumbnail loads", lambda: natural()[0] > 0, 35)
    result["thumbnail_natural"] = natural()
    result["thumbnail_colours"] = len(Image.open(io.BytesIO(thumb.screenshot_as_png)).convert("RGB").getcolors(1 << 24) or [])

    driver.execute_script("window.confirm = () => false")  # view-only, as the operator's first click
    main = driver.current_window_handle
    driver.find_element(By.CSS_SELECTOR, f'#vm-rows tr[data-vm="{vm}"] .open-screen').click()
    wait("a viewer window opens", lambda: len(driver.window_handles) > 1, 10)
    driver.switch_to.window([w for w in driver.window_handles if w != main][0])
    viewer = lambda: driver.execute_script("return window.vmcloudViewer && [window.vmcloudViewer.state, window.vmcloudViewer.scope]")
    result["viewer"] = wait("the viewer connects", lambda: (viewer() or [None])[0] == "connected" and viewer(), 45)
    result["viewer_canvas"] = driver.execute_script("return !!document.querySelector('#screen canvas')")
    result["viewer_url"] = driver.current_url.split("?")[0]
except Exception as error:  # reported, so the test shows how far the page got
    result["error"] = f"{type(error).__name__}: {error}"
    try:
        result["console"] = [l.get("message") for l in driver.get_log("browser")][-10:]
        result["monitor"] = monitor()
    except Exception:
        pass
finally:
    driver.quit()
print(json.dumps(result))
