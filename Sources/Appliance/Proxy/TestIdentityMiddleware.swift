import Foundation
import Hummingbird

/// TEMPORARY, tests only, until AuthMiddleware lands on main: with VMCLOUD_TEST_IDENTITY=1 in
/// the environment, `X-Test-Client: admin` or `X-Test-Client: app:g1,g2` sets the caller of
/// the proxy's routes. Off (not even installed) otherwise. Removed once main is merged.
struct TestIdentityMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    static var enabled: Bool { ProcessInfo.processInfo.environment["VMCLOUD_TEST_IDENTITY"] == "1" }

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        if context.client == nil, let raw = request.headers[.init("X-Test-Client")!] {
            if raw == "admin" {
                context.client = ClientIdentity(clientId: 1, role: .admin, groups: [])
            } else if raw.hasPrefix("app:") {
                let groups = Set(raw.dropFirst(4).split(separator: ",").map(String.init))
                context.client = ClientIdentity(clientId: 2, role: .application, groups: groups)
            }
        }
        return try await next(request, context)
    }
}
