// What the agent drives: `--browser file` (FileBrowser) or `--browser chromium` (ChromiumBrowser).
// Every method may block (Chromium loads pages); MessageHandler calls them on its worker thread.
import AgentProtocol

protocol Browser: AnyObject, Sendable {
    /// Applies a homepage and cookies; returns the homepage now in effect, as read back.
    func configure(homepage: String, cookies: [Cookie]) throws -> String?
    /// Loads `url` and returns once it loaded.
    func navigate(url: String) throws
    /// Back to a clean slate: no homepage, no cookies, no history.
    func reset() throws
    /// What is applied now.
    func status() throws -> BrowserStatus
}

struct BrowserStatus {
    /// The top-level URL (Chromium) or the configured homepage (file); nil before any configure.
    var homepage: String?
    var history: [String]? = nil
    var cookies: [Cookie]? = nil
}
