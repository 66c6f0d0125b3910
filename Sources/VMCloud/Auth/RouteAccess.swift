import Hummingbird
import NIOCore
import VMCloudCore

/// Which caller a route accepts, declared where the route is registered (`APIRouter`) and
/// applied by AuthMiddleware before the route runs. Rules that depend on a row (whose batch,
/// handle, page, job or viewer it is) stay in the handlers.
enum RouteAccess: Sendable, Equatable, CustomStringConvertible {
    /// No client key: the route carries its own credential (a viewer or audio token) or is public.
    case open
    /// Any registered client (a bearer key or a signed request), or what the allowance adds.
    case client(Authenticator.Allowance)
    /// An admin client only; others are 403 after they are identified.
    case admin(Authenticator.Allowance)

    static var client: RouteAccess { .client(.init()) }
    static var admin: RouteAccess { .admin(.init()) }

    var description: String {
        switch self {
        case .open: "open"
        case .client(let allowance): "client\(allowance)"
        case .admin(let allowance): "admin\(allowance)"
        }
    }
}

extension Authenticator {
    /// The caller of a request to a route with `access`: nil on an open route; a 401 without a
    /// credential the route accepts, a 403 for a non-admin on an admin route.
    func admit(_ request: inout Request, remoteAddress: SocketAddress?, access: RouteAccess) async throws -> ClientIdentity? {
        switch access {
        case .open:
            return nil
        case .client(let allowance):
            return try await identify(&request, remoteAddress: remoteAddress, allowance: allowance)
        case .admin(let allowance):
            let caller = try await identify(&request, remoteAddress: remoteAddress, allowance: allowance)
            guard caller.isAdmin else { throw APIError(status: .forbidden, code: "forbidden", message: "this request needs the admin key") }
            return caller
        }
    }
}
