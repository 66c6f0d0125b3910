import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// Which caller each route accepts, as its registration declares (`APIRouter`): every route the
/// router has is in the table below with the access it must have, so that a new route, or a
/// changed declaration, cannot silently take another credential; and AuthMiddleware applies each
/// declaration as written.
@Suite struct RouteAccessTests {
    static let legacy = RouteAccess.client(.queryKeyOrTrustedNetwork)

    /// Every route, as the router names it ("METHOD /path/{parameter}").
    static let expected: [String: RouteAccess] = {
        var table: [String: RouteAccess] = [
            // ClientRoutes: registering and revoking is the admin's; a client reads and rotates its own.
            "POST /v1/clients": .admin, "GET /v1/clients": .admin, "GET /v1/clients/me": .client,
            "GET /v1/clients/{id}": .client, "POST /v1/clients/{id}/key": .client, "DELETE /v1/clients/{id}": .admin,
            // LegacyRoutes: the seed's control apps.
            "POST /set-pool-size/{min}/{max}/{linger}": .admin(.queryKeyOrTrustedNetwork),
            "POST /prepare-batch/{size}/{homepage}": legacy, "POST /lock/{batch}": legacy, "POST /release/{vmhandle}": legacy,
            "GET /handle-status/{vmhandle}": legacy, "POST /cancel-batch/{batch}": legacy,
            // V1Routes.
            "GET /v1/openapi.yaml": .open,
            "GET /v1/pool": .admin, "PUT /v1/pool": .admin, "GET /v1/vms": .admin, "GET /v1/vms/{id}": .admin,
            "GET /v1/vms/{id}/agent": .admin, "POST /v1/vms/{id}/navigate": .admin, "GET /v1/events": .admin,
            "GET /v1/batches": .client, "POST /v1/batches": .client, "GET /v1/batches/{id}": .client,
            "POST /v1/batches/{id}/cancel": .client, "POST /v1/batches/{id}/locks": .client,
            "GET /v1/handles": .client, "GET /v1/handles/{id}": .client, "POST /v1/handles/{id}/release": .client, "POST /v1/handles/{id}/keepalive": .client,
            // MachineRoutes.
            "POST /v1/vms": .admin, "PATCH /v1/vms/{id}": .admin, "DELETE /v1/vms/{id}": .admin,
            "POST /v1/vms/{id}/suspend": .admin, "POST /v1/vms/{id}/resume": .admin, "POST /v1/vms/{id}/start": .admin,
            "POST /v1/vms/{id}/stop": .admin, "POST /v1/vms/{id}/destroy": .admin, "GET /v1/vms/{id}/events": .admin,
            "GET /v1/images": .admin, "GET /v1/reconciler": .admin,
            // ViewerLaunchRoutes, PageRoutes, JobRoutes.
            "PUT /v1/viewers/{project}/{kind}": .client, "GET /v1/viewers/{project}/{kind}": .client,
            "DELETE /v1/viewers/{project}/{kind}": .client,
            "GET /v1/handles/{id}/pages": .client, "GET /v1/pages/{id}/screenshot.png": .client, "GET /v1/pages/{id}/page.mhtml": .client,
            "POST /v1/jobs": .client, "GET /v1/jobs": .client, "GET /v1/jobs/errors": .client, "GET /v1/jobs/vms": .admin,
            "GET /v1/jobs/{id}": .client,
            // ViewerRoutes: the viewer token is the credential; noVNC's files are public.
            "GET /viewer/{id}": .open, "GET /v1/vms/{id}/vnc/access": .open, "GET /v1/vms/{id}/vnc": .open,
            "GET /novnc": .open, "HEAD /novnc": .open, "GET /novnc/**": .open, "HEAD /novnc/**": .open,
            // MonitorRoutes: the page is public, its feed takes ?key= (EventSource sets no header).
            "GET /static/monitor.html": .open, "GET /v1/monitor/events": .admin(.queryKey), "GET /v1/host": .admin,
            "POST /v1/vms/{id}/viewer-links": .admin,
            // ScreenRoutes, MetricsRoutes.
            "GET /v1/vms/{id}/screenshot.png": .admin, "GET /v1/vms/{id}/thumbnail.png": .admin, "GET /metrics": .admin,
            // AudioRoutes: the token is the credential.
            "GET /audio/{token}": .open, "GET /audio/{token}/player": .open, "GET /audio/{token}/ws": .open,
            // ResourceRoutes.
            "POST /v1/resources": .admin, "GET /v1/resources": .admin, "GET /v1/resources/{id}": .admin,
            "DELETE /v1/resources/{id}": .admin,
        ]
        // ProxyRoutes: every method, any client (groups are checked per resource), ?key= too.
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for path in ["/r/{resource}", "/r/{resource}/**", "/smart_proxy/{resource}/{groups}", "/smart_proxy/{resource}/{groups}/**"] {
                table["\(method) \(path)"] = .client(.queryKey)
            }
            // ViewerProxyRoutes: the viewer's access key is the credential.
            for path in ["/viewers/{project}/{kind}", "/viewers/{project}/{kind}/**"] { table["\(method) \(path)"] = .open }
        }
        return table
    }()

    static func name(_ route: Router<AppRequestContext>.RouteDescription) -> String { "\(route.method.rawValue) \(route.path)" }

    /// The routes the router has that declared no access (registered around APIRouter).
    static func undeclared(_ api: APIRouter) -> [String] {
        let declared = Set(api.declared.all.keys.map(\.description))
        return api.router.routes.map(name).filter { !declared.contains($0) }.sorted()
    }

    @Test func everyRouteDeclaresTheExpectedAccess() async throws {
        let harness = try await APIHarness()
        let api = harness.parts.routes()
        await harness.close()  // the tables are built; nothing is requested
        #expect(Self.undeclared(api) == [], "routes registered without an access")
        let routes = Set(api.router.routes.map(Self.name))
        // Declared under the name the router gives the route, else AuthMiddleware would not find it.
        let declared = Dictionary(uniqueKeysWithValues: api.declared.all.map { ($0.key.description, $0.value) })
        #expect(Set(declared.keys).subtracting(routes).sorted() == [], "declared under a name the router does not use")
        for route in routes.union(Self.expected.keys).sorted() {
            #expect(declared[route] == Self.expected[route],
                    "\(route): declared \(declared[route].map { "\($0)" } ?? "nothing"), expected \(Self.expected[route].map { "\($0)" } ?? "no such route")")
        }
    }

    /// A route added behind APIRouter's back is found, and is admin-only until it declares.
    @Test func anUndeclaredRouteIsFoundAndAdminOnly() async throws {
        let harness = try await APIHarness()
        let app = try await harness.pool.store.createClient(email: "app@example.test", role: .application, groups: []).1.text
        let api = harness.parts.routes()
        api.router.get("/v1/undeclared") { _, _ in "reached" }
        #expect(Self.undeclared(api) == ["GET /v1/undeclared"])
        try await Application(router: api.router).test(.router) { client in
            try await client.execute(uri: "/v1/undeclared", method: .get, headers: [.authorization: "Bearer \(app)"]) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/v1/undeclared", method: .get, headers: [.authorization: "Bearer \(harness.adminKey)"]) { response in
                #expect(String(buffer: response.body) == "reached")
            }
        }
        await harness.close()
    }

    /// noVNC's files come from FileMiddleware on the `/novnc` routes, to callers without a key.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/novnc/core/rfb.js")))
    func noVNCFilesAreServedWithoutAKey() async throws {
        let harness = try await APIHarness()
        let file = try Data(contentsOf: URL(fileURLWithPath: "/usr/share/novnc/core/rfb.js"))
        try await harness.test(authenticated: false) { client in
            try await client.execute(uri: "/novnc/core/rfb.js", method: .get) { response in
                #expect(response.status == .ok && Data(buffer: response.body) == file)
                #expect(response.headers[.contentType]?.contains("javascript") == true, "\(response.headers)")
            }
            try await client.execute(uri: "/novnc/core/rfb.js", method: .head) { response in
                #expect(response.status == .ok && response.headers[.contentLength] == String(file.count))
            }
            for uri in ["/novnc/core/no-such.js", "/novnc", "/novnc/"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .notFound, "\(uri): \(response.status)")
                }
            }
        }
    }

    /// Each route's declaration, as AuthMiddleware applies it: without a key, 401 unless open; an
    /// application's key, 403 on an admin route; `?key=`, accepted only where declared. (The
    /// trusted network needs a peer address, which router tests have not.)
    @Test func authMiddlewareAppliesEachDeclaration() async throws {
        let harness = try await APIHarness()
        let app = try await harness.pool.store.createClient(email: "app@example.test", role: .application, groups: []).1.text
        try await harness.test(authenticated: false) { client in
            func answer(_ route: String, query: String = "", headers: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, error: String?) {
                let parts = route.split(separator: " ", maxSplits: 1)
                let uri = String(parts[1])
                    .replacingOccurrences(of: #"\{[a-z]+\}"#, with: "999999", options: .regularExpression)
                    .replacingOccurrences(of: "**", with: "x") + query
                return try await client.execute(uri: uri, method: HTTPRequest.Method(String(parts[0]))!, headers: headers) { response in
                    let json = try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    return (response.status, json?["error"] as? String)
                }
            }
            for (route, access) in Self.expected.sorted(by: { $0.key < $1.key }) {
                let anonymous = try await answer(route)
                let allowance: Authenticator.Allowance
                switch access {
                case .open:
                    // Its own credential may be refused (invalid_token), never for want of a client key.
                    #expect(anonymous.error != "unauthenticated", "\(route) is open: \(anonymous)")
                    continue
                case .client(let declared):
                    allowance = declared
                case .admin(let declared):
                    allowance = declared
                    let byApp = try await answer(route, headers: [.authorization: "Bearer \(app)"])
                    #expect(byApp.status == .forbidden && byApp.error == "forbidden", "\(route) is admin-only: \(byApp)")
                }
                #expect(anonymous.status == .unauthorized && anonymous.error == "unauthenticated", "\(route) needs a key: \(anonymous)")
                let byQuery = try await answer(route, query: "?key=\(app)")
                #expect((byQuery.error != "unauthenticated") == allowance.queryKey, "\(route), ?key=: \(byQuery)")
            }
            // A request that matches no route: the 404 is for a caller with a key.
            let unmatched = try await answer("GET /v1/no-such-route")
            #expect(unmatched.status == .unauthorized && unmatched.error == "unauthenticated")
            // A legacy caller's ?key= on the wrong method: the 405 it got before the access rules
            // moved to the routes.
            let wrongMethod = try await answer("GET /lock/3", query: "?key=\(app)")
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.error == "method_not_allowed", "\(wrongMethod)")
        }
    }
}
