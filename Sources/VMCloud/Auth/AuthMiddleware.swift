import Hummingbird

/// Runs before every route, and for requests that match none: admits the caller under the
/// access the matched route declared at its registration (`APIRouter`), and puts who it is in
/// the context, or answers 401 (403 on an admin route). Hummingbird routes before it runs
/// middleware, so the matched route is known here by `context.endpointPath`; no path is parsed.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: Authenticator
    let declared: RouteAccessTable

    /// A request that matched no route (or not with its method): its 404 or 405 is for a caller
    /// with a key, so that without one nothing tells which paths exist. Any credential some
    /// route accepts will do (a legacy caller's `?key=` or trusted network gets its 405 as before).
    static let unmatched: RouteAccess = .client(.queryKeyOrTrustedNetwork)
    /// A route registered around APIRouter declared nothing: the strictest rule (and
    /// RouteAccessTests fails).
    static let undeclared: RouteAccess = .admin

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let access = context.endpointPath.map { declared.access(request.method, $0) ?? Self.undeclared } ?? Self.unmatched
        var request = request
        var context = context
        context.client = try await authenticator.admit(&request, remoteAddress: context.remoteAddress, access: access)
        return try await next(request, context)
    }
}
