import Hummingbird

/// Runs before every route: identifies the caller (Authenticator) and puts it in the context,
/// or answers 401. Which paths need no key, and which accept a `?key=` or a trusted network,
/// is decided here from the path alone, before routing.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: Authenticator

    /// The six vmcloud endpoints of the seed (first path segment).
    static let legacyEndpoints: Set<Substring> = ["set-pool-size", "prepare-batch", "lock", "release", "handle-status", "cancel-batch"]

    enum Access: Equatable {
        /// Carries its own credential (a viewer or audio token) or is public.
        case open
        case key(Authenticator.Allowance)
    }

    static func access(path: String) -> Access {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = segments.first else { return .key(.init()) }
        if legacyEndpoints.contains(first) { return .key(.init(queryKey: true, trustedNetwork: true)) }
        switch first {
        case "viewer", "audio", "novnc", "static": return .open
        case "smart_proxy", "r": return .key(.init(queryKey: true))
        case "v1":
            if segments.count == 2, segments[1] == "openapi.yaml" { return .open }
            // The monitor's live feed: EventSource cannot set an Authorization header.
            if segments.count == 3, segments[1] == "monitor", segments[2] == "events" { return .key(.init(queryKey: true)) }
            // The VNC WebSocket and what its token grants: the token is the credential.
            if segments.count >= 4, segments[1] == "vms", segments[3] == "vnc" { return .open }
            return .key(.init())
        default: return .key(.init())
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard case .key(let allowance) = Self.access(path: request.uri.path) else { return try await next(request, context) }
        var request = request
        var context = context
        context.client = try await authenticator.identify(&request, remoteAddress: context.remoteAddress, allowance: allowance)
        return try await next(request, context)
    }
}

/// For route groups that only operators use (generic VMs, images, screenshots).
struct AdminOnlyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try context.requireAdmin()
        return try await next(request, context)
    }
}
