import Crypto
import Foundation
import Hummingbird
import VMCloudCore

/// Who may go through a keyed viewer's proxy path, and what of the caller's request the guest
/// must not see. The credential is the viewer's access key: the `X-Viewer-Key` header, `?key=`,
/// or the cookie set when a browser first opened the URL with `?key=` (the page's own links and
/// subresources carry no key).
enum ViewerProxyAccess {
    static let keyHeader = HTTPFields.Element.Name("X-Viewer-Key")!
    static let cookieName = "vmcloud_viewer"

    /// Equal keys, in time independent of where they differ: the digests are compared byte by
    /// byte without an early exit (and hashing first makes the lengths equal).
    static func matches(_ given: String, _ expected: String) -> Bool {
        let a = SHA256.hash(data: Data(given.utf8)), b = SHA256.hash(data: Data(expected.utf8))
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    /// The cookie's value: derived from the key, so that a cookie opens the viewer's pages but
    /// is not the key that GET and DELETE of the viewer take.
    static func cookieValue(key: String) -> String {
        SHA256.hash(data: Data("vmcloud viewer cookie\n\(key)".utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// How the request proved the key, or nil.
    enum Proof { case header, query, cookie }

    static func proof(_ request: Request, key expected: String?) -> Proof? {
        guard let expected, !expected.isEmpty else { return nil }
        if let given = request.headers[keyHeader], matches(given, expected) { return .header }
        if queryKeys(request.uri.query).contains(where: { matches($0, expected) }) { return .query }
        let cookie = cookieValue(key: expected)
        // Every cookie of that name: a page may have set others beside ours (on a wider path).
        if cookies(request.headers[values: .cookie]).prefix(16).contains(where: { $0.name == cookieName && matches($0.value, cookie) }) { return .cookie }
        return nil
    }

    /// The values of the query's `key` parameters (names and values percent-decoded).
    static func queryKeys(_ query: String?) -> [String] {
        guard let query else { return [] }
        return query.split(separator: "&").compactMap { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            return parts.first == "key" ? (parts.count > 1 ? parts[1] : "") : nil
        }
    }

    /// The name=value pairs of Cookie header values.
    static func cookies(_ values: [String]) -> [(name: String, value: String)] {
        values.flatMap { $0.split(separator: ";") }.map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (parts[0].trimmingCharacters(in: .whitespaces), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
    }

    /// The `Set-Cookie` that lets the page's requests in: only on this viewer's path, not
    /// readable by scripts, not sent with other sites' subrequests or posts (Lax still lets a
    /// link from the launcher's site open the page), Secure when users reach us over https.
    static func setCookie(key: String, prefix: String, secure: Bool) -> String {
        "\(cookieName)=\(cookieValue(key: key)); Path=\(prefix)/; HttpOnly; SameSite=Lax" + (secure ? "; Secure" : "")
    }

    /// The caller's headers less what is ours: the key header, our cookie (the page's own
    /// cookies stay), and a Referer's `key` parameter (a page opened with `?key=` names it).
    /// The forwarders drop the rest (Authorization, the signature headers, hop-by-hop).
    static func forwardedHeaders(_ headers: HTTPFields) -> HTTPFields {
        var kept = HTTPFields()
        for field in headers {
            switch field.name {
            case keyHeader:
                continue
            case .cookie:
                let others = cookies([field.value]).filter { $0.name != cookieName }.map { "\($0.name)=\($0.value)" }
                if !others.isEmpty { kept.append(HTTPFields.Element(name: .cookie, value: others.joined(separator: "; "))) }
            case .referer:
                kept.append(HTTPFields.Element(name: .referer, value: withoutKey(url: field.value)))
            default:
                kept.append(field)
            }
        }
        return kept
    }

    static func withoutKey(url: String) -> String {
        guard let mark = url.firstIndex(of: "?") else { return url }
        let fragment = url[mark...].firstIndex(of: "#")
        let query = String(url[url.index(after: mark)..<(fragment ?? url.endIndex)])
        return String(url[..<mark]) + (ProxyTarget.withoutKey(query).map { "?" + $0 } ?? "") + (fragment.map { String(url[$0...]) } ?? "")
    }

    /// The guest's `Set-Cookie`s less any that name our cookie (a page must not replace it).
    static func responseHeaders(_ fields: HTTPFields) -> HTTPFields {
        var kept = HTTPFields()
        for field in fields {
            if field.name == .setCookie,
               field.value.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) == cookieName { continue }
            kept.append(field)
        }
        return kept
    }
}
