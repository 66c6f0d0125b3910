import AgentProtocol
import Foundation
import VMCloudCore

/// Strict parsing of everything the API takes from a path, query or body. Each failure names
/// the parameter and what was wrong, and happens before anything is changed.
enum InputValidation {
    /// Upper bound on any count the API accepts (pool max, batch size).
    static let maxCount = 10_000

    /// A non-negative decimal integer: digits only (no sign, no spaces, no hex).
    static func count(_ raw: String, _ name: String, max: Int = maxCount) throws -> Int {
        let value = try integer(raw, name)
        guard value <= Int64(max) else { throw APIError.badRequest("\(name) must be at most \(max), got \(raw)") }
        return Int(value)
    }

    static func integer(_ raw: String, _ name: String) throws -> Int64 {
        guard !raw.isEmpty, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw APIError.badRequest("\(name) must be a non-negative integer, got '\(raw.prefix(64))'")
        }
        guard let value = Int64(raw) else { throw APIError.badRequest("\(name) is too large: \(raw.prefix(64))") }
        return value
    }

    /// An id in a path: a positive integer.
    static func id(_ raw: String, _ name: String) throws -> Int64 {
        let value = try integer(raw, name)
        guard value > 0 else { throw APIError.badRequest("\(name) must be positive") }
        return value
    }

    static func poolSize(min: Int, max: Int, lingerMs: Int64) throws -> PoolSize {
        guard min >= 0, max >= 0, lingerMs >= 0 else { throw APIError.badRequest("min, max and linger must not be negative") }
        guard min <= max else { throw APIError.badRequest("min (\(min)) must not exceed max (\(max))") }
        guard max <= maxCount else { throw APIError.badRequest("max must be at most \(maxCount)") }
        return PoolSize(min: min, max: max, lingerMs: lingerMs)
    }

    static func batchSize(_ size: Int) throws -> Int {
        guard size > 0 else { throw APIError.badRequest("size must be at least 1") }
        guard size <= maxCount else { throw APIError.badRequest("size must be at most \(maxCount)") }
        return size
    }

    /// An absolute http(s) URL with a host, at most 8 KiB.
    static func homepage(_ value: String) throws -> String {
        guard !value.isEmpty else { throw APIError.badRequest("homepage is empty") }
        guard value.utf8.count <= 8192 else { throw APIError.badRequest("homepage is longer than 8192 bytes") }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " }),
              let components = URLComponents(string: value),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty
        else {
            throw APIError.badRequest("homepage must be an absolute http or https URL, got '\(value.prefix(200))'")
        }
        return value
    }

    /// The seed passes the homepage as one URL-encoded path segment.
    static func homepage(pathSegment raw: String) throws -> String {
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError.badRequest("homepage is not valid percent-encoding")
        }
        return try homepage(decoded)
    }

    /// A batch's `browser`: `full` (the default) or `kiosk`.
    static func browserWindow(_ raw: String?) throws -> BrowserWindow {
        guard let raw else { return .full }
        guard let window = BrowserWindow(rawValue: raw) else {
            throw APIError.badRequest("browser must be 'full' or 'kiosk', got '\(raw.prefix(32))'")
        }
        return window
    }

    /// Cookies for a batch: the guest channel's own rules (count, sizes, characters), plus a
    /// domain that is a host name.
    static func cookies(_ cookies: [Cookie]) throws -> [Cookie] {
        do {
            try AgentMessage(type: .configure, id: 0, homepage: "http://x/", cookies: cookies).validate()
        } catch {
            throw APIError.badRequest("cookies: \(error)")
        }
        for cookie in cookies {
            let domain = cookie.domain.hasPrefix(".") ? String(cookie.domain.dropFirst()) : cookie.domain
            guard !domain.isEmpty, domain.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else {
                throw APIError.badRequest("cookies: '\(cookie.domain.prefix(100))' is not a domain")
            }
        }
        return cookies
    }
}
