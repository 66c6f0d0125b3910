#!/usr/bin/python3
"""The viewer page's clipboard both ways, in headless Chromium (selenium) on the host, against a
browser VM showing the test site's clipboard.html.

usage: clipboard_check.py CONTROL_VIEWER_URL VIEW_VIEWER_URL API_BASE ADMIN_KEY VM_ID HANDLE SITE_BASE NONCE

1. The view viewer page shows no clipboard panel; the control page does.
2. Host -> VM: text typed into the control page's panel; then a "rogue" noVNC on the VIEW token
   (not view-only, as a user who edits the page could make it) sends its own clipboard text.
   A click and Ctrl+V through the control page's noVNC make the guest page navigate to
   ?pasted=<text>, which the appliance captures (GET /v1/handles/HANDLE/pages).
3. VM -> host: the guest page selects ?copy=<text>; Ctrl+C through noVNC; the control panel
   shows the text (data-guest-text). The rogue view session receives no clipboard message at
   all (not even QEMU's capabilities or "the clipboard changed" notices).

Prints one JSON line with what it saw.
"""
import json, sys, time, urllib.parse, urllib.request

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from viewer_driver import open_viewer, start_chromium

control_url, view_url, api, key, vm, handle, site, nonce = sys.argv[1:9]
result = {}


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def page_urls():
    return [p.get("url", "") for p in call("GET", f"/v1/handles/{handle}/pages")]


def wait(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def keys(driver, keysym, code):
    """Ctrl+<key> through the page's noVNC (as QEMU extended key events)."""
    driver.execute_script("""
        const rfb = window.vmcloudViewer.rfb;
        rfb.sendKey(0xffe3, 'ControlLeft', true); rfb.sendKey(arguments[0], arguments[1]);
        rfb.sendKey(0xffe3, 'ControlLeft', false);""", keysym, code)


def click_screen(driver):
    """A click in the middle of the VM's screen: the guest page's textarea covers it."""
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, "#screen canvas")).click().perform()


def navigate_and_wait(url, timeout=240):
    call("POST", f"/v1/vms/{vm}/navigate", {"url": url})
    wait(f"{url} captured", lambda: url in page_urls(), timeout)
    time.sleep(2)  # captured means loaded; give the screen a moment under TCG


driver = start_chromium()
try:
    started = time.monotonic()
    open_viewer(driver, view_url)
    result["viewPanelShown"] = driver.find_element(By.ID, "clipboard").is_displayed()

    open_viewer(driver, control_url)
    result["controlPanelShown"] = driver.find_element(By.ID, "clipboard").is_displayed()

    # Counts every ServerCutText (QEMU's clipboard caps, notify or text) a noVNC session reads:
    # the one place noVNC handles message type 3.
    driver.execute_script("""
        window.countServerCutTexts = (rfb, into) => {
            const handle = rfb._handleServerCutText.bind(rfb);
            rfb._handleServerCutText = () => { into.serverCutTexts += 1; return handle(); };
        };
        window.control = { serverCutTexts: 0 };
        countServerCutTexts(window.vmcloudViewer.rfb, window.control);""")
    # The rogue: a full noVNC on the view token, recording any clipboard it is given.
    driver.execute_script("""
        const viewURL = new URL(arguments[0]);
        const socket = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
            '/v1/vms/' + viewURL.pathname.split('/').pop() + '/vnc' + viewURL.search;
        window.rogue = { state: 'connecting', clips: [] };
        import('/novnc/core/rfb.js').then(({ default: RFB }) => {
            const div = document.createElement('div');
            div.style.cssText = 'position:fixed;left:0;top:0;width:64px;height:48px;opacity:0';
            document.body.appendChild(div);
            const rfb = new RFB(div, socket, { wsProtocols: ['binary'] });
            window.rogue.rfb = rfb;
            window.rogue.serverCutTexts = 0;
            countServerCutTexts(rfb, window.rogue);
            rfb.addEventListener('connect', () => { window.rogue.state = 'connected'; });
            rfb.addEventListener('disconnect', () => { window.rogue.state = 'disconnected'; });
            rfb.addEventListener('clipboard', (e) => { window.rogue.clips.push(e.detail.text); });
        });""", view_url)
    wait("rogue view session connected", lambda: driver.execute_script("return window.rogue.state") == "connected", 60)

    navigate_and_wait(f"{site}/clipboard.html")
    host_text = f"host-to-vm-\u00fc-{nonce}"  # non-ASCII: the clipboard is UTF-8
    driver.find_element(By.ID, "clipboard-toggle").click()
    driver.find_element(By.ID, "clipboard-text").send_keys(host_text)
    time.sleep(1)
    driver.execute_script("window.rogue.rfb.clipboardPasteFrom(arguments[0])", f"view-to-vm-{nonce}")
    time.sleep(2)
    click_screen(driver)
    time.sleep(1)
    keys(driver, 0x76, "KeyV")
    prefix = f"{site}/clipboard.html?pasted="
    pasted = wait("a paste captured", lambda: next((u for u in page_urls() if u.startswith(prefix)), None), 120)
    result["pasted"] = urllib.parse.unquote(pasted[len(prefix):])

    guest_text = f"vm-to-host-\u00e9-{nonce}"
    navigate_and_wait(f"{site}/clipboard.html?copy={urllib.parse.quote(guest_text)}")
    click_screen(driver)
    time.sleep(1)
    keys(driver, 0x63, "KeyC")
    try:
        wait("the guest's clipboard in the panel", lambda: driver.execute_script(
            "return document.getElementById('clipboard').dataset.guestText") == guest_text, 60)
    except TimeoutError:
        pass
    result["panelGuestText"] = driver.execute_script("return document.getElementById('clipboard').dataset.guestText || null")
    result["panelText"] = driver.find_element(By.ID, "clipboard-text").get_attribute("value")
    time.sleep(2)  # what the rogue would get arrives with the control session's copy
    result["rogueState"] = driver.execute_script("return window.rogue.state")
    result["rogueClips"] = driver.execute_script("return window.rogue.clips")
    result["rogueServerCutTexts"] = driver.execute_script("return window.rogue.serverCutTexts")
    result["controlServerCutTexts"] = driver.execute_script("return window.control.serverCutTexts")
    result["seconds"] = round(time.monotonic() - started, 1)
except Exception as error:  # reported, with what was seen so far
    result["error"] = f"{type(error).__name__}: {error}"
finally:
    driver.quit()
print(json.dumps(result))
