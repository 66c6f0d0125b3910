// `--browser chromium`: Chromium driven through the DevTools protocol.
//
// Threads: requests arrive on the request worker; CDP events on the CDP reader thread (which
// must never wait for a CDP reply itself); each Chromium process has a supervisor thread that
// reaps it and restarts it after a crash. `lifecycle` serialises starting and stopping;
// `state` guards the session and what the event stream said about the main frame.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import AgentProtocol

final class ChromiumBrowser: Browser, @unchecked Sendable {
    let config: ChromiumConfig
    private let outbox: Outbox
    private let capturer: PageCapturer
    private let lifecycle = Lock()
    private let state = Lock()
    /// One navigation at a time: a second one would cancel the first one's load.
    private let navigation = Lock()
    /// Host navigations so far; the homepage is reopened after a crash only if none came since.
    private var hostNavigations: UInt64 = 0
    private var process: ChromiumProcess?
    private var session: CDPClient?
    /// Events of an older session are ignored.
    private var epoch: UInt64 = 0
    private var committedLoaderID: String?
    private var committedURL = ""
    private var loadedLoaderID: String?
    private var captureDue = false
    /// Reopened after a crash so the user is not left on a blank page.
    private var homepage: String?
    /// Grows while Chromium keeps crashing soon after starting.
    private var crashDelay = 1.0
    private var launchedAt: UInt64 = 0

    init(config: ChromiumConfig, outbox: Outbox) {
        self.config = config
        self.outbox = outbox
        self.capturer = PageCapturer(sender: PageSender(outbox: outbox))
    }

    // MARK: Browser

    func configure(homepage: String, cookies: [Cookie]) throws -> Configured {
        try checkScheme(homepage)
        let s = try waitForSession()
        try s.call("Network.enable")
        for cookie in cookies {
            var params: [String: JSONValue] = [
                "name": .string(cookie.name), "value": .string(cookie.value),
                "domain": .string(cookie.domain), "path": .string(cookie.path ?? "/"),
            ]
            if let secure = cookie.secure { params["secure"] = .bool(secure) }
            if let httpOnly = cookie.httpOnly { params["httpOnly"] = .bool(httpOnly) }
            if let expires = cookie.expires { params["expires"] = .number(expires) }
            struct SetCookie: Decodable { var success: Bool? }
            if try s.call("Network.setCookie", .object(params), as: SetCookie.self).success == false {
                throw CDPError(description: "Chromium rejected cookie \(cookie.name) for \(cookie.domain)")
            }
        }
        // Network events are not needed afterwards; they would only flood the reader.
        try? s.call("Network.disable")
        state.withLock { self.homepage = homepage }
        try hostNavigate(s, homepage)
        return Configured(homepage: try s.call("Page.getNavigationHistory", timeout: 10, as: NavigationHistory.self).current?.url)
    }

    func navigate(url: String) throws {
        try checkScheme(url)
        try hostNavigate(try waitForSession(), url)
    }

    private func hostNavigate(_ s: CDPClient, _ url: String) throws {
        try navigation.withLock {
            state.withLock { hostNavigations += 1 }
            try navigateAndWait(s, url)
        }
    }

    func status() throws -> BrowserStatus {
        let s = try waitForSession(timeout: 10)
        let history = try s.call("Page.getNavigationHistory", timeout: 10, as: NavigationHistory.self)
        return BrowserStatus(homepage: history.current?.url, history: history.entries.map(\.url), cookies: try cookies(s))
    }

    func reset() throws {
        let started = Deadline.now
        try lifecycle.withLock {
            stopLocked()
            state.withLock { homepage = nil }
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
        guard crashed != nil, let homepage = state.withLock({ homepage }), let s = try? waitForSession(timeout: 5) else { return }
        navigation.withLock {
            guard state.withLock({ hostNavigations }) == navigationsBefore else { return }
            do { try navigateAndWait(s, homepage) } catch { log("reopening \(homepage.prefix(200)) after the crash: \(error)") }
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
        let process = try ChromiumProcess.launch(config, startURL: "about:blank")
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
            try client.call("Page.enable", timeout: 10)
            // Renderer crashes ("Aw, Snap!") arrive as Inspector.targetCrashed.
            try? client.call("Inspector.enable", timeout: 10)
            state.withLock {
                session = client
                committedLoaderID = nil
                loadedLoaderID = nil
                captureDue = false
                state.broadcast()
            }
            log("chromium ready in \((Deadline.now - started) / 1_000_000) ms")
        } catch {
            process.stop()
            throw error
        }
    }

    /// Stops the current Chromium on purpose (lifecycle lock held).
    private func stopLocked() {
        let (process, session) = state.withLock { () -> (ChromiumProcess?, CDPClient?) in
            defer { self.session = nil }
            return (self.process, self.session)
        }
        session?.close()
        process?.stop()
    }

    /// How long one Chromium start may take before it counts as failed: a minute alone under
    /// TCG, several with other guests booting on the same cores.
    static let startupLimit: Double = 300

    /// Blocks until a DevTools session is up, at most `timeout` seconds; false if none came.
    func waitUntilReady(timeout: Double) -> Bool {
        (try? waitForSession(timeout: timeout)) != nil
    }

    /// Polls /json/version until DevTools answers, then finds the page target's WebSocket path.
    private func waitForDevTools(_ process: ChromiumProcess) throws -> String {
        let deadline = Deadline(seconds: Self.startupLimit)
        struct Target: Decodable { var type: String; var webSocketDebuggerUrl: String? }
        var lastProblem = "no answer"
        while !deadline.expired {
            guard !process.hasExited else { throw CDPError(description: "chromium exited while starting") }
            if let version = try? HTTPClient.get(port: config.devtoolsPort, path: "/json/version", timeout: 2), version.status == 200,
               let list = try? HTTPClient.get(port: config.devtoolsPort, path: "/json/list", timeout: 2), list.status == 200 {
                let targets = (try? JSONDecoder().decode([Target].self, from: Data(list.body))) ?? []
                if let ws = targets.first(where: { $0.type == "page" })?.webSocketDebuggerUrl,
                   let range = ws.firstRange(of: "/devtools/page/") {
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
            session?.close()
            session = nil
            return true
        }
        guard current, !process.wasStopped else { log(why); return }
        log("crash: \(why)")
        outbox.send(AgentMessage(type: .browserCrashed, message: truncated(why, 1024)))
        // Crashing again within a minute of starting doubles the wait before the next start.
        crashDelay = Deadline.now - launchedAt < 60_000_000_000 ? min(crashDelay * 2, 30) : 1
        keepRunning(after: process)
    }

    // MARK: Pages

    private func handle(_ event: CDPEvent, epoch eventEpoch: UInt64) {
        struct FrameNavigated: Decodable {
            struct Frame: Decodable { var id: String; var parentId: String?; var loaderId: String; var url: String }
            var frame: Frame
        }
        switch event.method {
        case "Page.frameNavigated":
            guard let frame = event.params(FrameNavigated.self)?.frame, frame.parentId == nil else { return }
            state.withLock {
                guard epoch == eventEpoch else { return }
                committedLoaderID = frame.loaderId
                committedURL = frame.url
                captureDue = true
                state.broadcast()
            }
        case "Page.loadEventFired":
            let capture: (String, CDPClient)? = state.withLock {
                guard epoch == eventEpoch else { return nil }
                loadedLoaderID = committedLoaderID
                state.broadcast()
                guard captureDue, let session else { return nil }
                captureDue = false
                return (committedURL, session)
            }
            if let (url, session) = capture { capturer.pageLoaded(url: url, time: epochMilliseconds(), session: session) }
        case "Inspector.targetCrashed":
            log("the page's renderer crashed")
            outbox.send(AgentMessage(type: .browserCrashed, message: "the page's renderer crashed; reloading"))
            let session = state.withLock { epoch == eventEpoch ? self.session : nil }
            // Not on this (the reader) thread: a call waits for a reply this thread must read.
            if let session { startThread("reload") { try? session.call("Page.reload", timeout: 10) } }
        default:
            break
        }
    }

    /// Page.navigate, then waits for the main frame's load event of that navigation.
    private func navigateAndWait(_ s: CDPClient, _ url: String) throws {
        struct Navigated: Decodable { var loaderId: String?; var errorText: String? }
        let started = Deadline.now
        let result = try s.call("Page.navigate", ["url": .string(url)], timeout: config.loadTimeout, as: Navigated.self)
        if let error = result.errorText, !error.isEmpty {
            throw CDPError(description: "loading \(url.prefix(200)) failed: \(error)")
        }
        // No loader: a same-document navigation (fragment), done already.
        guard let loaderID = result.loaderId else { return }
        let (loaded, committed) = state.withLock {
            let loaded = state.wait(until: Deadline(seconds: config.loadTimeout)) { loadedLoaderID == loaderID || session !== s }
            return (loaded && session === s, committedLoaderID == loaderID)
        }
        if loaded {
            log("loaded \(url.prefix(200)) in \((Deadline.now - started) / 1_000_000) ms")
        } else if committed {
            // The page is there but some resource keeps it from finishing: good enough to answer.
            log("\(url.prefix(200)) did not finish loading within \(Int(config.loadTimeout)) s; answering anyway")
        } else {
            throw CDPError(description: "\(url.prefix(200)) did not load within \(Int(config.loadTimeout)) s")
        }
    }

    // MARK: Helpers

    /// The live DevTools session, waiting while Chromium (re)starts.
    private func waitForSession(timeout: Double = 60) throws -> CDPClient {
        let s = state.withLock { () -> CDPClient? in
            _ = state.wait(until: Deadline(seconds: timeout)) { session != nil && !session!.isClosed }
            return session
        }
        guard let s, !s.isClosed else { throw CDPError(description: "chromium is not running (waited \(Int(timeout)) s)") }
        return s
    }

    private func cookies(_ s: CDPClient) throws -> [Cookie] {
        struct Cookies: Decodable {
            struct Item: Decodable {
                var name: String; var value: String; var domain: String; var path: String?
                var expires: Double?; var secure: Bool?; var httpOnly: Bool?; var session: Bool?
            }
            var cookies: [Item]
        }
        let list: Cookies
        do {
            list = try s.call("Network.getAllCookies", timeout: 10, as: Cookies.self)
        } catch {
            // Network.getAllCookies is deprecated; Storage.getCookies is its successor.
            list = try s.call("Storage.getCookies", timeout: 10, as: Cookies.self)
        }
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
