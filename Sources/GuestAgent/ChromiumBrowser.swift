// `--browser chromium`: Chromium, a normal window with its address bar and tabs (or `--kiosk`
// when a batch asks), driven through the DevTools protocol on the browser target, every tab
// through its own flattened session (BrowserTabs).
//
// Threads: requests arrive on the request worker; CDP events on the CDP reader thread (which
// must never wait for a CDP reply itself); each Chromium process has a supervisor thread that
// reaps it and restarts it after a crash. `lifecycle` serialises starting and stopping;
// `state` guards the connection and the tabs. Events live in ChromiumBrowser+Events.swift.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import AgentProtocol

final class ChromiumBrowser: Browser, @unchecked Sendable {
    let config: ChromiumConfig
    let outbox: Outbox
    let capturer: PageCapturer
    private let lifecycle = Lock()
    let state = Lock()
    /// One navigation at a time: a second one would cancel the first one's load.
    private let navigation = Lock()
    /// Host navigations so far; the homepage is reopened after a crash only if none came since.
    private var hostNavigations: UInt64 = 0
    private var process: ChromiumProcess?
    /// The connection to the browser target; nil while Chromium (re)starts.
    var connection: CDPClient?
    /// Events of an older connection are ignored.
    var epoch: UInt64 = 0
    var tabs = BrowserTabs()
    /// Reopened after a crash so the user is not left on a blank page.
    private var homepage: String?
    /// The window mode the running Chromium was started in (a batch may ask for kiosk).
    private var kiosk = false
    /// Grows while Chromium keeps crashing soon after starting.
    private var crashDelay = 1.0
    private var launchedAt: UInt64 = 0

    init(config: ChromiumConfig, outbox: Outbox) {
        self.config = config
        self.outbox = outbox
        self.capturer = PageCapturer(sender: PageSender(outbox: outbox))
    }

    // MARK: Browser

    func configure(homepage: String, cookies: [Cookie], kiosk: Bool) throws -> Configured {
        try checkScheme(homepage)
        if kiosk != state.withLock({ self.kiosk }) { try restart(kiosk: kiosk) }
        let s = try waitForPrimaryTab()
        // Through the browser target: cookies belong to the profile, not to a tab, and a tab
        // still busy with an earlier load does not hold them up.
        for cookie in cookies {
            var params: [String: JSONValue] = [
                "name": .string(cookie.name), "value": .string(cookie.value),
                "domain": .string(cookie.domain), "path": .string(cookie.path ?? "/"),
            ]
            if let secure = cookie.secure { params["secure"] = .bool(secure) }
            if let httpOnly = cookie.httpOnly { params["httpOnly"] = .bool(httpOnly) }
            if let expires = cookie.expires { params["expires"] = .number(expires) }
            do {
                try s.client.call("Storage.setCookies", ["cookies": .array([.object(params)])])
            } catch {
                throw CDPError(description: "Chromium rejected cookie \(cookie.name) for \(cookie.domain): \(error)")
            }
        }
        state.withLock { self.homepage = homepage }
        // A site that fails to load is shown to the worker as Chromium shows it; the host
        // learns why, and the VM stays in service.
        let outcome = try hostNavigate(s, homepage)
        if let failure = outcome.failure { log("homepage \(homepage.prefix(200)) did not load: \(failure)") }
        let current = (try? s.call("Page.getNavigationHistory", timeout: 10, as: NavigationHistory.self))?.current?.url
        return Configured(homepage: current ?? homepage, loadError: outcome.failure)
    }

    func navigate(url: String) throws {
        try checkScheme(url)
        if let failure = try hostNavigate(try waitForPrimaryTab(), url).failure {
            throw CDPError(description: "loading \(url.prefix(200)) failed: \(failure)")
        }
    }

    private func hostNavigate(_ s: CDPPage, _ url: String) throws -> LoadOutcome {
        try navigation.withLock {
            state.withLock { hostNavigations += 1 }
            return try navigateAndWait(s, url)
        }
    }

    func status() throws -> BrowserStatus {
        let s = try waitForPrimaryTab(timeout: 10)
        let history = try s.call("Page.getNavigationHistory", timeout: 10, as: NavigationHistory.self)
        return BrowserStatus(homepage: history.current?.url, history: history.entries.map(\.url), cookies: try cookies(s),
                             tabs: state.withLock { tabs.bySession.count })
    }

    func reset() throws {
        let started = Deadline.now
        try lifecycle.withLock {
            // Stopping the process closes every tab and window the worker opened.
            stopLocked()
            state.withLock {
                homepage = nil
                kiosk = false
                tabs.removeAll(renumber: true)
            }
            try ProfileDirectory.recreate(config.profileDir, uid: try BrowserUser.lookup(config.user).uid,
                                          gid: try BrowserUser.lookup(config.user).gid)
            do {
                try launchLocked()
            } catch {
                // Keep trying in the background; this reset still failed.
                startInBackground(wipe: false)
                throw error
            }
        }
        log("reset done in \((Deadline.now - started) / 1_000_000) ms")
    }

    // MARK: Lifecycle

    /// A new Chromium in the other window mode, on the same profile (cookies survive).
    private func restart(kiosk: Bool) throws {
        try lifecycle.withLock {
            stopLocked()
            state.withLock { self.kiosk = kiosk }
            do {
                try launchLocked()
            } catch {
                startInBackground(wipe: false)
                throw error
            }
        }
    }

    /// First start (on a wiped profile) or a retry loop after a failure, off the caller's thread.
    func startInBackground(wipe: Bool) {
        startThread("chromium-start") { [self] in
            if wipe {
                do {
                    let user = try BrowserUser.lookup(config.user)
                    try ProfileDirectory.recreate(config.profileDir, uid: user.uid, gid: user.gid)
                } catch {
                    log("cannot prepare the profile: \(error)")
                }
            }
            keepRunning(after: nil)
        }
    }

    /// Starts Chromium unless a live one exists, retrying with backoff.
    private func keepRunning(after crashed: ChromiumProcess?) {
        var delay = crashed == nil ? 0 : crashDelay
        let navigationsBefore = state.withLock { hostNavigations }
        while true {
            if delay > 0 { sleepMilliseconds(Int(delay * 1000)) }
            let done: Bool = lifecycle.withLock {
                if let process, !process.hasExited { return true }
                do {
                    try launchLocked()
                    return true
                } catch {
                    log("starting chromium failed: \(error)")
                    return false
                }
            }
            if done { break }
            delay = min(max(delay * 2, 1), 30)
        }
        // After a crash, bring the user back to the configured page.
        // The host may have navigated meanwhile: then its page wins.
        guard crashed != nil, let homepage = state.withLock({ homepage }), let s = try? waitForPrimaryTab(timeout: 5) else { return }
        navigation.withLock {
            guard state.withLock({ hostNavigations }) == navigationsBefore else { return }
            do { _ = try navigateAndWait(s, homepage) } catch { log("reopening \(homepage.prefix(200)) after the crash: \(error)") }
        }
    }

    /// Launches Chromium and connects to its page (lifecycle lock held).
    private func launchLocked() throws {
        let started = Deadline.now
        // Another browser on our port would answer in its place.
        if let probe = try? TCPConnection(loopbackPort: config.devtoolsPort, deadline: Deadline(seconds: 1)) {
            probe.close()
            throw CDPError(description: "127.0.0.1:\(config.devtoolsPort) is already in use")
        }
        let process = try ChromiumProcess.launch(config, kiosk: state.withLock { kiosk }, startURL: "about:blank")
        state.withLock { self.process = process }
        launchedAt = Deadline.now
        startThread("chromium-wait") { [self] in
            let why = process.waitForExit()
            exited(process, why)
        }
        do {
            let path = try waitForDevTools(process)
            let myEpoch = state.withLock { epoch += 1; return epoch }
            let client = try CDPClient(
                port: config.devtoolsPort, path: path,
                onEvent: { [self] event in handle(event, epoch: myEpoch) },
                onClose: { why in log("DevTools connection closed: \(why)") })
            state.withLock {
                connection = client
                tabs.removeAll(renumber: false)
            }
            // Every tab and window, the first one included, is attached as it appears and
            // paused until its session is set up, so no page loads unseen (Events).
            try client.call("Target.setAutoAttach", ["autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true], timeout: 10)
            guard state.withLock({ state.wait(until: Deadline(seconds: 30)) { tabs.primary != nil || connection !== client } && connection === client }) else {
                throw CDPError(description: "no tab was attached within 30 s")
            }
            log("chromium ready in \((Deadline.now - started) / 1_000_000) ms")
        } catch {
            process.stop()
            throw error
        }
    }

    /// Stops the current Chromium on purpose (lifecycle lock held).
    private func stopLocked() {
        let (process, connection) = state.withLock { () -> (ChromiumProcess?, CDPClient?) in
            defer { self.connection = nil }
            return (self.process, self.connection)
        }
        connection?.close()
        process?.stop()
    }

    /// How long one Chromium start may take before it counts as failed: a minute alone under
    /// TCG, several with other guests booting on the same cores.
    static let startupLimit: Double = 300

    /// Blocks until a DevTools session is up, at most `timeout` seconds; false if none came.
    func waitUntilReady(timeout: Double) -> Bool {
        (try? waitForPrimaryTab(timeout: timeout)) != nil
    }

    /// Polls /json/version until DevTools answers with the browser target and a first page
    /// exists; returns the browser target's WebSocket path.
    private func waitForDevTools(_ process: ChromiumProcess) throws -> String {
        let deadline = Deadline(seconds: Self.startupLimit)
        struct Version: Decodable { var webSocketDebuggerUrl: String? }
        struct Target: Decodable { var type: String }
        var lastProblem = "no answer"
        while !deadline.expired {
            guard !process.hasExited else { throw CDPError(description: "chromium exited while starting") }
            if let version = try? HTTPClient.get(port: config.devtoolsPort, path: "/json/version", timeout: 2), version.status == 200,
               let list = try? HTTPClient.get(port: config.devtoolsPort, path: "/json/list", timeout: 2), list.status == 200 {
                let targets = (try? JSONDecoder().decode([Target].self, from: Data(list.body))) ?? []
                let ws = (try? JSONDecoder().decode(Version.self, from: Data(version.body)))?.webSocketDebuggerUrl
                if targets.contains(where: { $0.type == "page" }), let ws, let range = ws.firstRange(of: "/devtools/browser/") {
                    // Only the path: the agent connects to its own loopback port, whatever the URL says.
                    return String(ws[range.lowerBound...])
                }
                lastProblem = "no page target yet"
            }
            sleepMilliseconds(100)
        }
        throw CDPError(description: "DevTools did not come up within \(Int(Self.startupLimit)) s (\(lastProblem))")
    }

    /// Supervisor: a Chromium process ended.
    private func exited(_ process: ChromiumProcess, _ why: String) {
        let current = state.withLock { () -> Bool in
            guard self.process === process else { return false }
            connection?.close()
            connection = nil
            return true
        }
        guard current, !process.wasStopped else { log(why); return }
        log("crash: \(why)")
        outbox.send(AgentMessage(type: .browserCrashed, message: truncated(why, 1024)))
        // Crashing again within a minute of starting doubles the wait before the next start.
        crashDelay = Deadline.now - launchedAt < 60_000_000_000 ? min(crashDelay * 2, 30) : 1
        keepRunning(after: process)
    }

    // MARK: Helpers

    /// The oldest open tab's session, waiting while Chromium (re)starts.
    func waitForPrimaryTab(timeout: Double = 60) throws -> CDPPage {
        let s = state.withLock { () -> CDPPage? in
            _ = state.wait(until: Deadline(seconds: timeout)) { connection.map { !$0.isClosed } == true && tabs.primary != nil }
            return connection.map { !$0.isClosed } == true ? tabs.primary?.page : nil
        }
        guard let s else { throw CDPError(description: "chromium is not running (waited \(Int(timeout)) s)") }
        return s
    }

    private func cookies(_ s: CDPPage) throws -> [Cookie] {
        struct Cookies: Decodable {
            struct Item: Decodable {
                var name: String; var value: String; var domain: String; var path: String?
                var expires: Double?; var secure: Bool?; var httpOnly: Bool?; var session: Bool?
            }
            var cookies: [Item]
        }
        let list = try s.client.call("Storage.getCookies", timeout: 10, as: Cookies.self)
        return list.cookies.prefix(1000).map { c in
            let persistent = c.session != true && (c.expires ?? -1) > 0
            return Cookie(name: c.name, value: c.value, domain: c.domain, path: c.path, secure: c.secure,
                          httpOnly: c.httpOnly, expires: persistent ? c.expires : nil)
        }
    }

    /// Only web pages (and about:blank): the host has no business opening file: or chrome: URLs.
    private func checkScheme(_ url: String) throws {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("about:") else {
            throw CDPError(description: "only http, https and about URLs can be loaded")
        }
    }
}
