// What Chromium's event stream says, tab by tab: tabs and windows appearing (attached, set up,
// then let run) and going, main-frame commits and loads (each load of a committed page is
// captured, in whatever tab), renderer crashes; and the host's navigations, which wait for the
// load they started and report how it went.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

/// How a page load ended, as the worker saw it: nil failure when it loaded.
struct LoadOutcome {
    var failure: String?
    static let loaded = LoadOutcome(failure: nil)
}

extension ChromiumBrowser {
    /// On the CDP reader thread: never waits for a CDP reply (calls go to their own thread).
    func handle(_ event: CDPEvent, epoch eventEpoch: UInt64) {
        switch event.method {
        case "Target.attachedToTarget":
            attached(event, epoch: eventEpoch)
        case "Target.detachedFromTarget":
            struct Detached: Decodable { var sessionId: String }
            guard let gone = event.params(Detached.self)?.sessionId else { return }
            state.withLock {
                guard epoch == eventEpoch else { return }
                tabs.remove(session: gone)
                state.broadcast()
            }
        case "Page.frameNavigated":
            struct FrameNavigated: Decodable {
                struct Frame: Decodable {
                    var parentId: String?; var loaderId: String; var url: String
                    /// Set on Chromium's error page: the URL that failed to load.
                    var unreachableUrl: String?
                }
                var frame: Frame
                var type: String?
            }
            guard let session = event.sessionId, let navigated = event.params(FrameNavigated.self), navigated.frame.parentId == nil else { return }
            let frame = navigated.frame
            // Back or forward to a page kept in the back/forward cache: shown at once, with no
            // load event to wait for, so it is captured now.
            let restored = navigated.type == "BackForwardCacheRestore"
            let capture: BrowserTab? = state.withLock {
                guard epoch == eventEpoch else { return nil }
                tabs.update(session: session) { tab in
                    tab.committedLoaderID = frame.loaderId
                    tab.committedURL = frame.unreachableUrl ?? frame.url
                    tab.captureDue = !restored
                    if restored { tab.loadedLoaderID = frame.loaderId }
                }
                state.broadcast()
                return restored ? tabs[session] : nil
            }
            if let tab = capture { capturer.pageLoaded(url: tab.committedURL, tab: tab.number, time: epochMilliseconds(), session: tab.page) }
        case "Page.loadEventFired":
            guard let session = event.sessionId else { return }
            let capture: (String, BrowserTab)? = state.withLock {
                guard epoch == eventEpoch, let tab = tabs[session] else { return nil }
                tabs.update(session: session) { $0.loadedLoaderID = $0.committedLoaderID; $0.captureDue = false }
                state.broadcast()
                return tab.captureDue ? (tab.committedURL, tab) : nil
            }
            if let (url, tab) = capture { capturer.pageLoaded(url: url, tab: tab.number, time: epochMilliseconds(), session: tab.page) }
        case "Inspector.targetCrashed":
            guard let session = event.sessionId else { return }
            log("a tab's renderer crashed")
            outbox.send(AgentMessage(type: .browserCrashed, message: "a tab's renderer crashed; reloading it"))
            let page = state.withLock { epoch == eventEpoch ? tabs[session]?.page : nil }
            // Not on this (the reader) thread: a call waits for a reply this thread must read.
            if let page { startThread("reload") { try? page.call("Page.reload", timeout: 10) } }
        default:
            break
        }
    }

    /// A new tab or window (or a worker, which is let go): registered, its page events
    /// enabled, then resumed, so its first load is seen.
    private func attached(_ event: CDPEvent, epoch eventEpoch: UInt64) {
        struct Attached: Decodable {
            struct Info: Decodable { var targetId: String; var type: String }
            var sessionId: String
            var targetInfo: Info
        }
        guard let attached = event.params(Attached.self) else { return }
        let registered: (CDPClient, BrowserTab?)? = state.withLock {
            guard epoch == eventEpoch, let connection else { return nil }
            let page = CDPPage(client: connection, sessionId: attached.sessionId)
            guard attached.targetInfo.type == "page" else { return (connection, nil) }
            return (connection, tabs.add(targetId: attached.targetInfo.targetId, page: page))
        }
        guard let (client, tab) = registered else { return }
        let sessionId = attached.sessionId
        startThread("attach") { [self] in
            guard let tab else {
                // Not a tab, or too many: let it run without us.
                try? client.call("Runtime.runIfWaitingForDebugger", session: sessionId, timeout: 10)
                try? client.call("Target.detachFromTarget", ["sessionId": .string(sessionId)], timeout: 10)
                return
            }
            // All three go out at once: a paused tab (a link's new tab, in its own renderer)
            // answers Page.enable only once it runs. Renderer crashes ("Aw, Snap!") arrive as
            // Inspector.targetCrashed.
            let failures = client.callAll([("Page.enable", [:]), ("Inspector.enable", [:]), ("Runtime.runIfWaitingForDebugger", [:])],
                                          session: sessionId, timeout: 30)
            if let failure = failures[0] ?? failures[2] {
                log("setting up tab \(tab.number) failed: \(failure)")
                return
            }
            state.withLock {
                tabs.update(session: sessionId) { $0.ready = true }
                state.broadcast()
            }
            log("tab \(tab.number) attached")
        }
    }

    /// Page.navigate in `s`'s tab, then waits for the main frame's load of that navigation.
    /// Throws only when the browser itself went away; a site that fails is an outcome.
    func navigateAndWait(_ s: CDPPage, _ url: String) throws -> LoadOutcome {
        struct Navigated: Decodable { var loaderId: String?; var errorText: String? }
        let started = Deadline.now
        let result: Navigated
        do {
            result = try s.call("Page.navigate", ["url": .string(url)], timeout: config.loadTimeout, as: Navigated.self)
        } catch where !s.isClosed {
            // A server that accepts and never answers holds Page.navigate itself; stop the
            // load so the tab takes the next request.
            try? s.call("Page.stopLoading", timeout: 5)
            return LoadOutcome(failure: "timeout: no response within \(Int(config.loadTimeout)) s")
        }
        // No loader: a same-document navigation (fragment), done already.
        guard let loaderID = result.loaderId else { return LoadOutcome(failure: result.errorText.flatMap { $0.isEmpty ? nil : $0 }) }
        if let error = result.errorText, !error.isEmpty {
            // Chromium shows its error page for it; wait until that is in (and captured), so
            // the tab answers the next call.
            state.withLock {
                _ = state.wait(until: Deadline(seconds: 10)) { tabs[s.sessionId]?.loadedLoaderID == loaderID || tabs[s.sessionId] == nil || s.isClosed }
            }
            return LoadOutcome(failure: error)
        }
        let (loaded, committed, gone) = state.withLock {
            let loaded = state.wait(until: Deadline(seconds: config.loadTimeout)) {
                tabs[s.sessionId]?.loadedLoaderID == loaderID || tabs[s.sessionId] == nil || s.isClosed
            }
            let tab = tabs[s.sessionId]
            return (loaded && tab?.loadedLoaderID == loaderID, tab?.committedLoaderID == loaderID, tab == nil || s.isClosed)
        }
        if gone { throw CDPError(description: "the tab closed while loading \(url.prefix(200))") }
        if loaded {
            log("loaded \(url.prefix(200)) in \((Deadline.now - started) / 1_000_000) ms")
            if let status = httpStatus(s), status >= 400 { return LoadOutcome(failure: "HTTP \(status)") }
            return .loaded
        }
        // Shown, but some resource keeps it from finishing; or nothing came at all.
        return LoadOutcome(failure: committed
            ? "timeout: the page did not finish loading within \(Int(config.loadTimeout)) s"
            : "timeout: nothing loaded within \(Int(config.loadTimeout)) s")
    }

    /// The HTTP status of the tab's current document (Navigation Timing), nil if unknown.
    private func httpStatus(_ s: CDPPage) -> Int? {
        struct Evaluated: Decodable {
            struct Value: Decodable { var value: Double? }
            var result: Value
        }
        let expression = "performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0"
        guard let value = (try? s.call("Runtime.evaluate", ["expression": .string(expression), "returnByValue": true],
                                       timeout: 10, as: Evaluated.self))?.result.value, value > 0 else { return nil }
        return Int(value)
    }
}
