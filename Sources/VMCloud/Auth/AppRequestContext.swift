import Hummingbird
import NIOCore
import VMCloudCore

/// The request context of the API router: Hummingbird's core context, the peer's address
/// (for the trusted-network rule) and the caller once AuthMiddleware has admitted it.
struct AppRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// nil when the request did not come over a socket (router tests).
    let remoteAddress: SocketAddress?
    /// Set by AuthMiddleware before any route runs; nil only on the open routes.
    var client: ClientIdentity?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        client = nil
    }

    /// The caller of a route that is not open.
    func requireClient() throws -> ClientIdentity {
        guard let client else { throw APIError(status: .unauthorized, code: "unauthenticated", message: "this request needs a client key") }
        return client
    }
}
