import HTTPTypes
import Hummingbird
import Synchronization
import VMCloudCore

/// The access each route declared at registration, keyed as the router names the route it
/// matched (`context.endpointPath`: the route's whole path as registered).
final class RouteAccessTable: Sendable {
    struct Route: Hashable, Sendable, CustomStringConvertible {
        let method: HTTPRequest.Method
        let path: String
        var description: String { "\(method.rawValue) \(path)" }
    }

    private let routes = Mutex<[Route: RouteAccess]>([:])

    func declare(_ method: HTTPRequest.Method, _ path: RouterPath, _ access: RouteAccess) {
        routes.withLock { routes in
            let route = Route(method: method, path: path.description)
            // Hummingbird refuses a second handler for a route, so a second access is a mistake too.
            precondition(routes[route] == nil, "\(route) declared twice")
            routes[route] = access
        }
    }

    func access(_ method: HTTPRequest.Method, _ path: String) -> RouteAccess? {
        routes.withLock { $0[Route(method: method, path: path)] }
    }

    var all: [Route: RouteAccess] { routes.withLock { $0 } }
}
