#!/usr/bin/python3
"""A crowd worker in the full browser, through the viewer page: opens the viewer URL in headless
Chromium on the host (selenium), and through noVNC's keyboard and mouse, in the VM's Chromium:
types PAGE_A into the address bar (Ctrl+L), clicks page A (one big link that opens page B in a
new tab), clicks page B (a link to page C in the same tab), then goes back (Alt+Left). After
each step it waits until the appliance lists the page the step should have captured.

usage: full_browser.py VIEWER_URL PAGE_A PAGES_URL API_KEY OUT_DIR

Prints one JSON line: the pages listed at the end, or an error and the step it failed at.
"""
import json, sys, time, urllib.request

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from viewer_driver import open_viewer, start_chromium

viewer_url, page_a, pages_url, api_key, out_dir = sys.argv[1:6]
base = page_a.rsplit("/", 1)[0]

# Characters that a US keyboard types with Shift: sent as Shift + the unshifted key, the way a
# person presses them (noVNC forwards physical keys to QEMU).
SHIFTED = {":": ";", "?": "/", "_": "-", "&": "7", "%": "5"}


def pages():
    request = urllib.request.Request(pages_url, headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_for(step, predicate, timeout=240, fatal=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = pages()
        if predicate(listed):
            driver.save_screenshot(f"{out_dir}/full-browser-{step}.png")
            return listed
        time.sleep(1)
    driver.save_screenshot(f"{out_dir}/full-browser-{step}.png")
    if not fatal:
        return None
    print(json.dumps({"error": f"step {step}: the expected page was not captured", "pages": pages()}))
    sys.exit(1)


def type_text(text):
    for ch in text:
        actions = ActionChains(driver)
        if SHIFTED.get(ch):
            actions.key_down(Keys.SHIFT).send_keys(SHIFTED[ch]).key_up(Keys.SHIFT)
        else:
            actions.send_keys(ch)
        actions.perform()
        time.sleep(0.12)


def click_middle():
    canvas = driver.find_element("css selector", "#screen canvas")
    # The middle of the screen is inside the page (the browser's bars are at the top).
    ActionChains(driver).move_to_element(canvas).click().perform()


def count(listed, suffix, tab=None):
    return sum(1 for p in listed if p["url"].endswith(suffix) and (tab is None or p.get("tab") == tab))


driver = start_chromium()
try:
    open_viewer(driver, viewer_url)
    time.sleep(2)
    click_middle()  # focus: the homepage is a plain page, a click there does nothing
    time.sleep(1)

    # 1. The address bar: Ctrl+L, the URL, Enter. Under TCG the address bar can take seconds to
    # take the focus, and keys typed before that go to the page: a person would look and type
    # again, and so does this.
    for attempt in range(3):
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("l").key_up(Keys.CONTROL).perform()
        time.sleep(4)
        type_text(page_a.split("://", 1)[-1])  # as people type it: no scheme
        time.sleep(1)
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        if wait_for(f"typed-url-{attempt + 1}", lambda listed: count(listed, "/tab-a.html") >= 1, timeout=90, fatal=attempt == 2):
            break
    time.sleep(2)

    # 2. Page A is one link with target=_blank: page B opens in a new tab.
    click_middle()
    wait_for("new-tab", lambda listed: count(listed, "/tab-b.html") >= 1)
    time.sleep(2)

    # 3. Page B links to page C in the same tab.
    click_middle()
    wait_for("link", lambda listed: count(listed, "/tab-c.html") >= 1)
    time.sleep(2)

    # 4. Back: page B again.
    ActionChains(driver).key_down(Keys.ALT).send_keys(Keys.ARROW_LEFT).key_up(Keys.ALT).perform()
    listed = wait_for("back", lambda listed: count(listed, "/tab-b.html") >= 2)
    driver.save_screenshot(f"{out_dir}/full-browser-end.png")
finally:
    driver.quit()

print(json.dumps({"pages": [{"url": p["url"], "tab": p.get("tab"), "id": p["id"]} for p in listed]}))
