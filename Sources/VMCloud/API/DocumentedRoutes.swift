import VMCloudCore
/// The paths and methods the OpenAPI document declares, to tell "no such path" (404) from "no
/// such method on this path" (405 with `Allow`): Hummingbird's router answers 404 for both.
/// The document is the list because `OpenAPIDocumentTests` proves every operation in it routed.
struct DocumentedRoutes: Sendable {
    private struct Route: Sendable {
        /// Literal segments, or nil for a `{parameter}`; a last `{path}` takes the rest.
        let segments: [String?]
        let restOfPath: Bool
        var methods: Set<String>
    }
    private let routes: [Route]

    /// Reads `paths:` of an OpenAPI 3 YAML document in this repository's layout (a path at two
    /// spaces, its methods at four).
    init(openAPIDocument: String) {
        var routes: [Route] = []
        var inPaths = false
        for line in openAPIDocument.split(separator: "\n") {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") { break }  // the next top-level key
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                let template = line.dropFirst(2).dropLast()
                var segments: [String?] = template.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { part in
                    part.hasPrefix("{") && part.hasSuffix("}") ? nil : String(part)
                }
                let rest = template.hasSuffix("/{path}")
                if rest { segments.removeLast() }
                routes.append(Route(segments: segments, restOfPath: rest, methods: []))
            } else if !routes.isEmpty, let method = ["get", "post", "put", "patch", "delete"].first(where: { line == "    \($0):" }) {
                routes[routes.count - 1].methods.insert(method.uppercased())
            }
        }
        self.routes = routes
    }

    /// The methods the document declares for `path` (empty when no documented path matches).
    /// Where several documented paths match (`/v1/clients/me` and `/v1/clients/{id}`), the one
    /// with the most literal segments wins, as in the router.
    func methods(for path: String) -> Set<String> {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let matching = routes.filter { Self.matches($0, parts) }
        guard let best = matching.map({ $0.segments.compactMap { $0 }.count }).max() else { return [] }
        return matching.filter { $0.segments.compactMap { $0 }.count == best }.reduce(into: Set<String>()) { $0.formUnion($1.methods) }
    }

    private static func matches(_ route: Route, _ parts: [String]) -> Bool {
        if route.restOfPath ? parts.count < route.segments.count : parts.count != route.segments.count { return false }
        return zip(route.segments, parts).allSatisfy { segment, part in segment.map { $0 == part } ?? !part.isEmpty }
    }
}
