"""The viewer page in headless Chromium on the host (Debian's chromium + chromium-driver,
selenium): shared by the scripts that look at or type into a VM's screen through noVNC."""
import json, sys, time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def start_chromium():
    """A headless Chromium 1280x900 under chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def open_viewer(driver, viewer_url, timeout=60):
    """Loads the viewer page and waits until noVNC is connected; on failure prints a JSON error
    line with the page's console and exits 1."""
    driver.get(viewer_url)
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = driver.execute_script("return window.vmcloudViewer && window.vmcloudViewer.state")
        if state == "connected":
            return
        time.sleep(0.2)
    logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
    print(json.dumps({"error": "viewer never connected", "state": state, "console": [l.get("message") for l in logs][-10:]}))
    driver.quit()
    sys.exit(1)
