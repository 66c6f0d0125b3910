import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VMCloudCore

/// Establishes who sent a request: a bearer key, a signed request (RequestSignature), a `key`
/// query parameter where old callers need one, or, for the six vmcloud endpoints only, an
/// unauthenticated caller on a trusted network.
final class Authenticator: Sendable {
    let store: Store
    let trusted: TrustedNetworks
    let counter: RequestCounter
    /// Signed bodies are read whole to be hashed before the signature can be checked, so the
    /// limit is the API's largest own body (a viewer's input files, 1 MiB) and a little more.
    static let maxSignedBody = (1 << 20) + 4096

    init(store: Store, trusted: TrustedNetworks, counter: RequestCounter) {
        self.store = store
        self.trusted = trusted
        self.counter = counter
    }

    /// What a route accepts besides a header key (declared with its RouteAccess).
    struct Allowance: Sendable, Equatable, CustomStringConvertible {
        /// `?key=KEY`, for callers that cannot set headers (old control apps, a browser tab).
        var queryKey = false
        /// No key at all from a trusted network.
        var trustedNetwork = false

        /// Callers that cannot set headers: a browser's EventSource or tab.
        static let queryKey = Self(queryKey: true)
        /// The seed's six endpoints: their control apps send `?key=`, or nothing from a trusted network.
        static let queryKeyOrTrustedNetwork = Self(queryKey: true, trustedNetwork: true)

        var description: String { (queryKey ? "+queryKey" : "") + (trustedNetwork ? "+trustedNetwork" : "") }
    }

    func identify(_ request: inout Request, remoteAddress: SocketAddress?, allowance: Allowance) async throws -> ClientIdentity {
        let client = try await authenticate(&request, allowance: allowance)
        if let client {
            await counter.count(client.id!)
            return client.identity
        }
        if allowance.trustedNetwork {
            guard trusted.contains(remoteAddress) else { throw Self.unauthorized(.untrustedNetwork) }
            return .trustedNetwork
        }
        throw Self.unauthorized(.missing)
    }

    /// The registered client the request proves to be, or nil when it carries no credentials.
    private func authenticate(_ request: inout Request, allowance: Allowance) async throws -> ClientRecord? {
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw Self.unauthorized(.malformed("Authorization must be 'Bearer KEY'"))
            }
            return try await client(key: String(parts[1]).trimmingCharacters(in: .whitespaces))
        }
        let signature: RequestSignature?
        let headers = request.headers
        do {
            signature = try RequestSignature.parse { name in HTTPField.Name(name).flatMap { headers[$0] } }
        } catch {
            // parse throws only AuthFailure (typed throws).
            throw Self.unauthorized(error)
        }
        if let signature { return try await verify(signature, &request) }
        if allowance.queryKey, let key = request.uri.queryParameters.get("key") {
            return try await client(key: key)
        }
        return nil
    }

    private func client(key: String) async throws -> ClientRecord {
        guard ClientKey.looksValid(key), let client = try await store.client(keyHash: ClientKey.hash(key)), !client.revoked else {
            throw Self.unauthorized(.unknownKey)
        }
        return client
    }

    private func verify(_ signature: RequestSignature, _ request: inout Request) async throws -> ClientRecord {
        // An unknown client answers like a bad signature: ids cannot be probed.
        guard let client = try await store.client(signature.clientId), !client.revoked else { throw Self.unauthorized(.badSignature) }
        guard signature.isFresh(now: Date()) else { throw Self.unauthorized(.stale) }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxSignedBody)
        } catch {
            throw APIError(status: .contentTooLarge, code: "body_too_large", message: "a signed body may be at most \(Self.maxSignedBody) bytes")
        }
        let canonical = RequestSignature.canonical(
            method: request.method.rawValue, path: request.uri.description, timestamp: signature.timestamp,
            nonce: signature.nonce, body: body.readableBytesView)
        guard signature.matches(canonical, key: client.signingKey) else { throw Self.unauthorized(.badSignature) }
        guard try await store.rememberSignature(signature.signature) else { throw Self.unauthorized(.replayed) }
        return client
    }

    static func unauthorized(_ failure: AuthFailure) -> APIError {
        APIError(status: .unauthorized, code: "unauthenticated", message: failure.description)
    }
}
