// Every tab (and popup window) of the running Chromium the agent is attached to, numbered in the
// order they appeared, with what the event stream said about each one's main frame. Guarded by
// ChromiumBrowser's state lock; this type only keeps the table.

/// One tab: its DevTools session and its main frame's last commit and load.
struct BrowserTab {
    let number: Int
    let targetId: String
    let page: CDPPage
    /// Page.enable answered: events of this tab are flowing.
    var ready = false
    var committedLoaderID: String?
    /// The URL the worker sees (for an error page: the URL that failed, not chrome-error://).
    var committedURL = ""
    var loadedLoaderID: String?
    /// A commit happened that no capture has been taken for yet.
    var captureDue = false
}

struct BrowserTabs {
    /// A page that opens windows in a loop must not make the agent track (and capture) without
    /// bound; tabs beyond this are left unattached.
    static let limit = 64

    private(set) var bySession: [String: BrowserTab] = [:]
    private var lastNumber = 0

    /// Registers a new tab; nil when the table is full.
    mutating func add(targetId: String, page: CDPPage) -> BrowserTab? {
        guard bySession.count < Self.limit else { return nil }
        lastNumber += 1
        let tab = BrowserTab(number: lastNumber, targetId: targetId, page: page)
        bySession[page.sessionId] = tab
        return tab
    }

    mutating func remove(session: String) { bySession[session] = nil }

    mutating func update(session: String, _ change: (inout BrowserTab) -> Void) {
        guard var tab = bySession[session] else { return }
        change(&tab)
        bySession[session] = tab
    }

    subscript(session: String) -> BrowserTab? { bySession[session] }

    /// The tab the host's navigations and status go to: the oldest one still open.
    var primary: BrowserTab? { bySession.values.filter(\.ready).min { $0.number < $1.number } }

    /// A browser that ended takes its tabs along. Numbering starts again only with a new
    /// session (a reset), so a crash's restarted tabs don't reuse numbers the pages carry.
    mutating func removeAll(renumber: Bool) {
        bySession = [:]
        if renumber { lastNumber = 0 }
    }
}
