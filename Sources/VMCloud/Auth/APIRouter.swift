import HTTPTypes
import Hummingbird

/// The API router as the routes files see it: a route can only be registered with the access it
/// accepts (`RouteAccess`), which AuthMiddleware applies to the route the router matched. Not a
/// `RouterMethods`, so that Hummingbird's `get`/`post` without an access are not at hand.
struct APIRouter {
    /// The router itself, for the application (and for tests to list its routes).
    let router: Router<AppRequestContext>
    /// The access every route declared, by method and path.
    let declared: RouteAccessTable
    /// Where routes go: the router, or a group of it.
    private let base: any RouterMethods<AppRequestContext>
    /// `base`'s path from the root: the router records routes by their whole path.
    private let prefix: RouterPath

    /// Adds AuthMiddleware to `router`: call it before registering any route, as Hummingbird
    /// applies a middleware only to the routes added after it.
    init(_ router: Router<AppRequestContext>, authenticator: Authenticator) {
        let declared = RouteAccessTable()
        router.add(middleware: AuthMiddleware(authenticator: authenticator, declared: declared))
        self.init(router: router, declared: declared, base: router, prefix: "")
    }

    private init(router: Router<AppRequestContext>, declared: RouteAccessTable, base: any RouterMethods<AppRequestContext>, prefix: RouterPath) {
        (self.router, self.declared, self.base, self.prefix) = (router, declared, base, prefix)
    }

    /// Routes under `path`.
    func group(_ path: RouterPath) -> APIRouter {
        APIRouter(router: router, declared: declared, base: base.group(path), prefix: prefix.appendingPath(path))
    }

    /// Routes that `middleware` wraps (after their access is checked).
    func adding(middleware: any MiddlewareProtocol<Request, Response, AppRequestContext>) -> APIRouter {
        APIRouter(router: router, declared: declared, base: base.group().add(middleware: middleware), prefix: prefix)
    }

    @discardableResult
    func on(_ path: RouterPath, method: HTTPRequest.Method, access: RouteAccess,
            use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        declared.declare(method, prefix.appendingPath(path), access)
        base.on(path, method: method, use: handler)
        return self
    }

    @discardableResult
    func get(_ path: RouterPath = "", access: RouteAccess,
             use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .get, access: access, use: handler)
    }

    @discardableResult
    func head(_ path: RouterPath = "", access: RouteAccess,
              use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .head, access: access, use: handler)
    }

    @discardableResult
    func post(_ path: RouterPath = "", access: RouteAccess,
              use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .post, access: access, use: handler)
    }

    @discardableResult
    func put(_ path: RouterPath = "", access: RouteAccess,
             use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .put, access: access, use: handler)
    }

    @discardableResult
    func patch(_ path: RouterPath = "", access: RouteAccess,
               use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .patch, access: access, use: handler)
    }

    @discardableResult
    func delete(_ path: RouterPath = "", access: RouteAccess,
                use handler: @Sendable @escaping (Request, AppRequestContext) async throws -> some ResponseGenerator) -> Self {
        on(path, method: .delete, access: access, use: handler)
    }
}
