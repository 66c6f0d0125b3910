import Foundation
import Hummingbird
import VMCloudCore

/// What a keyed viewer's proxy URL names: `/viewers/{project}/{kind}/{rest}`, taken from the raw
/// path so that the rest is forwarded exactly as sent; the query loses its `key` parameters.
/// `admit` finds the viewer and checks the caller's proof of its key before anything is sent.
struct ViewerProxyTarget: Equatable, Sendable {
    var project: String
    var kind: String
    /// `/viewers/{project}/{kind}`, as sent.
    var prefix: String
    /// What follows the prefix: "" (then the caller is sent to `prefix/`) or `/...`.
    var rest: String
    /// The query without `key`; nil when nothing is left.
    var query: String?

    var pathAndQuery: String { (rest.isEmpty ? "/" : rest) + (query.map { "?" + $0 } ?? "") }

    static func parse(path: String, query: String?) throws -> ViewerProxyTarget {
        // "/viewers/p/k" -> ["", "viewers", "p", "k"]; "/viewers/p/k/a/b" -> [.., "k", "a/b"].
        let parts = path.split(separator: "/", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[1] == "viewers" else { throw APIError.notFound("no such viewer path") }
        let (project, kind) = try ViewerLaunchRoutes.validKey(project: String(parts[2]), kind: String(parts[3]))
        let prefix = parts[0..<4].joined(separator: "/")
        return ViewerProxyTarget(project: project, kind: kind, prefix: prefix, rest: String(path.dropFirst(prefix.count)),
                                 query: ProxyTarget.withoutKey(query))
    }

    /// The target, its viewer and how the caller proved the viewer's key: 404 for no such
    /// viewer, 401 without the key (another viewer's key is no key for this one).
    static func admit(_ request: Request, store: Store) async throws -> (ViewerProxyTarget, MachineRecord, ViewerProxyAccess.Proof) {
        let target = try parse(path: request.uri.path, query: request.uri.query)
        guard let machine = try await store.machine(ownerKey: ViewerLaunchRoutes.ownerKey(target.project, target.kind)) else {
            throw APIError.notFound("no viewer \(target.project)/\(target.kind)")
        }
        guard let proof = ViewerProxyAccess.proof(request, key: machine.accessKey) else {
            throw APIError(status: .unauthorized, code: "invalid_key",
                           message: "the viewer's access key is required (X-Viewer-Key header, ?key= or the cookie ?key= sets)")
        }
        return (target, machine, proof)
    }

    /// The viewer's service: its guest IP on libvirt's NAT network and the port given at
    /// launch, the only port of the guest this path reaches. 503 until the guest has an IP.
    static func upstream(_ machine: MachineRecord) throws -> Upstream {
        guard let ip = machine.ip, let id = machine.id else {
            throw APIError(status: .serviceUnavailable, code: "viewer_not_ready",
                           message: "viewer \(machine.name) has no IP yet (status \(machine.status.rawValue))")
        }
        return Upstream(host: ip, port: machine.spec.viewerPort ?? ViewerLaunchRoutes.defaultPort, machineId: id)
    }
}
