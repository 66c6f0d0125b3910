// What the agent drives: `--browser file` (FileBrowser) or `--browser chromium` (ChromiumBrowser).
// Every method may block (Chromium loads pages); MessageHandler calls them on its worker thread.
import AgentProtocol

protocol Browser: AnyObject, Sendable {
    /// Applies a homepage and cookies (and the window mode); returns the homepage now in
    /// effect, as read back, and why the page did not load if it did not.
    func configure(homepage: String, cookies: [Cookie], kiosk: Bool) throws -> Configured
    /// Loads `url` and returns once it loaded.
    func navigate(url: String) throws
    /// Back to a clean slate: no homepage, no cookies, no history.
    func reset() throws
    /// What is applied now.
    func status() throws -> BrowserStatus
}

struct Configured {
    /// The homepage now in effect, as read back.
    var homepage: String?
    /// Why the homepage did not load (DNS, refused, TLS, HTTP status, timeout); nil if it did.
    var loadError: String? = nil
    /// Started right after the `configured` reply is queued: work that must neither hold up
    /// the reply nor overtake it (the file browser's page load).
    var afterReply: (@Sendable () -> Void)? = nil
}

struct BrowserStatus {
    /// The top-level URL (Chromium) or the configured homepage (file); nil before any configure.
    var homepage: String?
    var history: [String]? = nil
    var cookies: [Cookie]? = nil
    /// Open tabs and windows (Chromium).
    var tabs: Int? = nil
}
