// guest-agent: answers the host's requests on the virtio-serial port `org.vmcloud.agent.0`.
// Built fully static (no Foundation/ICU) so it can run from a bare busybox initramfs.
import Glibc

let agentVersion = "0.2.0"

let options = Options.parse(CommandLine.arguments)
// A parent may start us with signals blocked (Foundation's Process does); SIGTERM must work, and
// Chromium inherits this mask through fork.
var noSignals = sigset_t()
sigemptyset(&noSignals)
sigprocmask(SIG_SETMASK, &noSignals, nil)
// A write to a vanished peer must come back as an error, not kill the agent.
signal(SIGPIPE, SIG_IGN)
let outbox = Outbox()
let browser: any Browser
switch options.browser {
case .file:
    log("starting version \(agentVersion), file browser, state file \(options.stateFile)")
    browser = FileBrowser(path: options.stateFile, outbox: outbox)
case .chromium:
    log("starting version \(agentVersion), chromium browser \(options.chromium.executable) as \(options.chromium.user), profile \(options.chromium.profileDir)")
    installTerminationHandler()
    let chromium = ChromiumBrowser(config: options.chromium, outbox: outbox)
    chromium.startInBackground(wipe: true)
    // The hello tells the host this VM can take a batch, so it waits for the browser: under
    // TCG with several guests booting, Chromium takes minutes, and a configure sent on an
    // earlier hello ran out of time and failed the VM. Bounded, so a browser that never comes
    // up still shows on the host (configure then fails with the reason).
    if !chromium.waitUntilReady(timeout: ChromiumBrowser.startupLimit) {
        log("chromium not ready after \(Int(ChromiumBrowser.startupLimit)) s; saying hello anyway")
    }
    browser = chromium
}
// Input events the guest receives, so the host can check that VNC input reaches the VM.
let inputs = InputWatcher()
let handler = MessageHandler(browser: browser, outbox: outbox, inputs: inputs)
AgentLoop(portOverride: options.port, handler: handler, outbox: outbox).run()
