#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The version of the host <-> guest channel protocol. A peer that sees another version answers
/// with an `error` and ignores the message.
public let agentProtocolVersion = 1

/// Largest accepted line on the channel, newline excluded. The host trusts nothing a guest sends:
/// a longer line is discarded (and reported), never buffered without bound.
public let agentMaxLineBytes = 64 * 1024

/// One message on the virtio-serial channel, encoded as one line of JSON.
///
/// The shape is flat (one struct, optional fields per kind) so that both sides can decode any
/// message first and then validate the fields its kind needs with `validate()`.
public struct AgentMessage: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Both directions: the host sends it on connect, the agent sends it at start and in
        /// answer to the host's hello (carrying its version and IP).
        case hello
        /// Host -> guest: apply a homepage and cookies.
        case configure
        /// Guest -> host: configure applied; carries the homepage now in effect and, when the
        /// page did not load (DNS, refused, TLS, HTTP 4xx/5xx, timeout), `loadError`.
        case configured
        /// Host -> guest: return the browser to a clean slate.
        case reset
        /// Guest -> host: reset done.
        case resetDone = "reset_done"
        /// Host -> guest: report what is applied now. Guest -> host: `state` answer.
        case status
        case state
        case ping
        case pong
        /// Host -> guest: load `url` in the browser. Guest -> host: `navigated` once loaded.
        case navigate
        case navigated
        /// Guest -> host, unsolicited: a top-level page finished loading (`page` numbers it,
        /// per agent run); its screenshot and MHTML follow as `blob` chunks of the announced sizes.
        case page
        case blob
        /// Guest -> host, unsolicited: the browser died; the agent restarts it.
        case browserCrashed = "browser_crashed"
        /// Either direction: the request with `id` failed (or a line could not be understood).
        case error
    }

    /// The two captures sent for every page.
    public enum BlobPart: String, Codable, Sendable, CaseIterable {
        case screenshot, mhtml

        /// Largest capture the host accepts.
        public var maxBytes: Int { self == .screenshot ? 16 << 20 : 32 << 20 }
    }

    public var v: Int
    public var type: Kind
    /// Correlates a request with its answer.
    public var id: UInt64?
    public var agentVersion: String?
    public var ip: String?
    public var homepage: String?
    public var cookies: [Cookie]?
    public var message: String?
    /// navigate, page: the URL.
    public var url: String?
    /// page: the document title.
    public var title: String?
    /// configured: why the homepage did not load (`net::ERR_NAME_NOT_RESOLVED`, `HTTP 503`,
    /// ...); nil when it loaded. The browser shows what the site showed either way: a site
    /// that fails is the worker's business, not a fault of the VM.
    public var loadError: String?
    /// configure: show the browser as a kiosk (one full-screen page, no address bar or tabs)
    /// instead of its normal window.
    public var kiosk: Bool?
    /// page: the browser tab (or window) it loaded in, numbered from 1 in the order they opened
    /// since the last reset.
    public var tab: Int?
    /// page, blob: the page number this capture belongs to.
    public var page: UInt64?
    /// page: when it loaded, milliseconds since the Unix epoch (guest clock).
    public var time: Int64?
    /// page: sizes of the captures that follow.
    public var screenshotBytes: Int?
    public var mhtmlBytes: Int?
    /// blob: which capture, where this chunk starts, its bytes (base64), and whether it is the last.
    public var part: BlobPart?
    public var offset: Int?
    public var data: String?
    public var final: Bool?
    /// state: the browser's session history (URLs), oldest first.
    public var history: [String]?
    /// state: keyboard key presses the guest kernel received since the agent started (evdev
    /// EV_KEY, value 1 = press, codes below 0x100; autorepeat and releases are not counted).
    public var keyEvents: UInt64?
    /// state: pointer events the guest kernel received since the agent started (evdev EV_ABS and
    /// EV_REL events, and presses of buttons, EV_KEY codes 0x100 and up).
    public var pointerEvents: UInt64?
    /// state: the browser's open tabs and windows.
    public var tabs: Int?

    public init(
        type: Kind, id: UInt64? = nil, agentVersion: String? = nil, ip: String? = nil,
        homepage: String? = nil, cookies: [Cookie]? = nil, message: String? = nil,
        url: String? = nil, title: String? = nil, loadError: String? = nil, kiosk: Bool? = nil, tab: Int? = nil, page: UInt64? = nil, time: Int64? = nil,
        screenshotBytes: Int? = nil, mhtmlBytes: Int? = nil, part: BlobPart? = nil, offset: Int? = nil,
        data: String? = nil, final: Bool? = nil, history: [String]? = nil,
        keyEvents: UInt64? = nil, pointerEvents: UInt64? = nil, tabs: Int? = nil
    ) {
        self.v = agentProtocolVersion
        self.type = type
        self.id = id
        self.agentVersion = agentVersion
        self.ip = ip
        self.homepage = homepage
        self.cookies = cookies
        self.message = message
        self.url = url
        self.title = title
        self.loadError = loadError
        self.kiosk = kiosk
        self.tab = tab
        self.page = page
        self.time = time
        self.screenshotBytes = screenshotBytes
        self.mhtmlBytes = mhtmlBytes
        self.part = part
        self.offset = offset
        self.data = data
        self.final = final
        self.history = history
        self.keyEvents = keyEvents
        self.pointerEvents = pointerEvents
        self.tabs = tabs
    }
}

/// A browser cookie to install with `configure` (the fields of CDP's Network.setCookie).
public struct Cookie: Codable, Sendable, Equatable {
    public var name: String
    public var value: String
    public var domain: String
    public var path: String?
    public var secure: Bool?
    public var httpOnly: Bool?
    /// Expiry in seconds since the Unix epoch; nil for a session cookie.
    public var expires: Double?

    public init(name: String, value: String, domain: String, path: String? = nil,
                secure: Bool? = nil, httpOnly: Bool? = nil, expires: Double? = nil) {
        self.name = name
        self.value = value
        self.domain = domain
        self.path = path
        self.secure = secure
        self.httpOnly = httpOnly
        self.expires = expires
    }
}
