import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import VMCloudCore

/// Forwards one HTTP request to a resource's upstream and streams the answer back. Owns the
/// one HTTPClient of the proxy and shuts it down with the server (a Service).
///
/// Request and response headers pass through except the hop-by-hop ones (RFC 9110 7.6.1, and
/// those the Connection header names), `Host` (the upstream's own) and the caller's
/// credentials (`Authorization`, the `X-Vmcloud-*` signature headers; ProxyTarget drops
/// `?key=`); `X-Forwarded-For/-Proto/-Host/-Prefix` are added. Bodies stream both ways.
/// Every wait has a deadline: the connect (5 s), the response head and each read of the body
/// (`upstreamTimeout`).
final class UpstreamForwarder: Service, Sendable {
    let upstreamTimeout: TimeInterval
    private let configuration: HTTPClient.Configuration
    /// Made on the first forward (a router without traffic, as in tests, holds none); shut
    /// down by `run` when the server stops, or by `shutdown`.
    private let made = Mutex<HTTPClient?>(nil)

    init(upstreamTimeout: TimeInterval) {
        self.upstreamTimeout = upstreamTimeout
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .milliseconds(Int64(upstreamTimeout * 1000)))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.httpVersion = .http1Only
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        // The guest port answered the waker's probe: a refused connect is an answer, not a
        // reason to retry until the deadline.
        pool.retryConnectionEstablishment = false
        configuration.connectionPool = pool
        self.configuration = configuration
    }

    var client: HTTPClient {
        made.withLock { made in
            if let made { return made }
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            made = client
            return client
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }

    func shutdown() async throws {
        if let client = made.withLock({ made in defer { made = nil }; return made }) { try await client.shutdown() }
    }

    /// What the caller sent, reduced to what goes upstream.
    struct Outgoing: Sendable {
        var method: HTTPRequest.Method
        /// The path after the resource's prefix (starts with `/`) and the query without `key`.
        var pathAndQuery: String
        var headers: HTTPFields
        var body: RequestBody?
        var bodyLength: Int?
        /// `/r/{id}` or `/smart_proxy/{id}/{groups}`.
        var prefix: String
        var peer: String?
    }

    enum Failure: Error {
        /// No connection to the upstream: nothing was sent.
        case unreachable(String)
        case other(APIError)
    }

    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// Never forwarded: the caller's credentials (a bearer key, a signed request's headers),
    /// what the forwarder sets itself, and what the body's own framing decides.
    static let dropped: Set<String> = [
        "authorization", "x-vmcloud-client", "x-vmcloud-timestamp", "x-vmcloud-nonce", "x-vmcloud-signature",
        "content-length", "expect", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix",
    ]

    func forward(_ outgoing: Outgoing, to upstream: Upstream) async throws(Failure) -> HTTPClientResponse {
        var request = HTTPClientRequest(url: "http://\(upstream.host):\(upstream.port)\(outgoing.pathAndQuery)")
        request.method = HTTPMethod(rawValue: outgoing.method.rawValue)
        request.headers = Self.requestHeaders(outgoing)
        if let body = outgoing.body {
            request.body = .stream(body, length: outgoing.bodyLength.map { .known(Int64($0)) } ?? .unknown)
        }
        do {
            return try await client.execute(request, deadline: .now() + .milliseconds(Int64(upstreamTimeout * 1000)))
        } catch {
            throw Self.classify(error, timeout: upstreamTimeout)
        }
    }

    static func requestHeaders(_ outgoing: Outgoing) -> HTTPHeaders {
        let named = connectionTokens(outgoing.headers[values: .connection])
        var headers = HTTPHeaders()
        var forwardedFor: [String] = []
        var host: String?
        for field in outgoing.headers {
            let name = field.name.canonicalName
            if name == "x-forwarded-for" { forwardedFor.append(field.value); continue }
            if name == "host" { host = field.value; continue }
            if hopByHop.contains(name) || named.contains(name) { continue }
            if dropped.contains(name) { continue }
            headers.add(name: field.name.rawName, value: field.value)
        }
        if let peer = outgoing.peer { forwardedFor.append(peer) }
        if !forwardedFor.isEmpty { headers.add(name: "X-Forwarded-For", value: forwardedFor.joined(separator: ", ")) }
        headers.add(name: "X-Forwarded-Proto", value: "http")
        if let host { headers.add(name: "X-Forwarded-Host", value: host) }
        headers.add(name: "X-Forwarded-Prefix", value: outgoing.prefix)
        return headers
    }

    /// The upstream's headers for the caller: hop-by-hop ones dropped.
    static func responseHeaders(_ headers: HTTPHeaders) -> HTTPFields {
        let named = connectionTokens(headers["connection"])
        var fields = HTTPFields()
        for (name, value) in headers {
            let lower = name.lowercased()
            if hopByHop.contains(lower) || named.contains(lower) { continue }
            guard let fieldName = HTTPFields.Element.Name(name) else { continue }
            fields.append(HTTPFields.Element(name: fieldName, value: value))
        }
        return fields
    }

    private static func connectionTokens(_ values: [String]) -> Set<String> {
        Set(values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
    }

    static func classify(_ error: Error, timeout: TimeInterval) -> Failure {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout:
                return .other(APIError(status: .gatewayTimeout, code: "upstream_timeout", message: "the resource's service did not answer within \(Int(timeout)) s"))
            case .connectTimeout:
                return .unreachable("connect timed out")
            case .remoteConnectionClosed:
                return .other(APIError(status: .badGateway, code: "upstream_closed", message: "the resource's service closed the connection without an answer"))
            case .invalidURL, .emptyHost, .emptyScheme:
                return .other(APIError.badRequest("the path cannot be forwarded: \(error)"))
            default:
                return .other(APIError(status: .badGateway, code: "upstream_error", message: "the resource's service: \(error)"))
            }
        }
        if error is NIOConnectionError || error is IOError {
            return .unreachable(PortProbe.describe(error))
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return .unreachable("connect timed out") }
        return .other(APIError(status: .badGateway, code: "upstream_error", message: "the resource's service: \(error)"))
    }
}
