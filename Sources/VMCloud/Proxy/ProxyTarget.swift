import Foundation
import VMCloudCore

/// What a proxy URL names: `/r/{id}/{rest}` or `/smart_proxy/{id}/{groups}/{rest}` (the seed's
/// form). Taken from the raw request path, so the rest is forwarded exactly as sent; the query
/// loses its `key` parameters (the caller's credential, not the service's).
struct ProxyTarget: Equatable, Sendable {
    var resource: String
    /// The groups the URL claims (smart_proxy form); nil for `/r/`.
    var claimed: Set<String>?
    /// `/r/{id}` or `/smart_proxy/{id}/{groups}`, as sent.
    var prefix: String
    /// What follows the prefix: "" (then the caller is sent to `prefix/`) or `/...`.
    var rest: String
    /// The query without `key`; nil when nothing is left.
    var query: String?

    var pathAndQuery: String { (rest.isEmpty ? "/" : rest) + (query.map { "?" + $0 } ?? "") }

    static func parse(path: String, query: String?, smart: Bool) throws -> ProxyTarget {
        // "/r/id" -> ["", "r", "id"]; "/r/id/" -> [.., ""]; "/r/id/a/b" -> [.., "a/b"].
        let fixed = smart ? 4 : 3
        let parts = path.split(separator: "/", maxSplits: fixed, omittingEmptySubsequences: false)
        guard parts.count >= fixed else { throw APIError.notFound("no such proxy path") }
        let id = String(parts[2])
        guard ResourceValidation.isSlug(id) else { throw APIError.notFound("no resource '\(id.prefix(80))'") }
        let claimed = smart ? try ResourceValidation.claimedGroups(String(parts[3])) : nil
        let prefix = parts[0..<fixed].joined(separator: "/")
        let rest = String(path.dropFirst(prefix.count))
        return ProxyTarget(resource: id, claimed: claimed, prefix: prefix, rest: rest, query: withoutKey(query))
    }

    /// The query minus every `key` parameter (however its name is percent-encoded).
    static func withoutKey(_ query: String?) -> String? {
        guard let query, !query.isEmpty else { return nil }
        let kept = query.split(separator: "&", omittingEmptySubsequences: false).filter { item in
            let name = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let decoded = name.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? name
            return decoded != "key"
        }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }
}
