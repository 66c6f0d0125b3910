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
        /// Guest -> host: configure applied; carries the homepage now in effect.
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
        /// Either direction: the request with `id` failed (or a line could not be understood).
        case error
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

    public init(
        type: Kind, id: UInt64? = nil, agentVersion: String? = nil, ip: String? = nil,
        homepage: String? = nil, cookies: [Cookie]? = nil, message: String? = nil
    ) {
        self.v = agentProtocolVersion
        self.type = type
        self.id = id
        self.agentVersion = agentVersion
        self.ip = ip
        self.homepage = homepage
        self.cookies = cookies
        self.message = message
    }
}

/// A browser cookie to install with `configure`.
public struct Cookie: Codable, Sendable, Equatable {
    public var name: String
    public var value: String
    public var domain: String
    public var path: String?

    public init(name: String, value: String, domain: String, path: String? = nil) {
        self.name = name
        self.value = value
        self.domain = domain
        self.path = path
    }
}
