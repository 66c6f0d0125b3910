import Crypto
import Foundation

/// The HMAC form of authentication. A client sends
///
///     X-Vmcloud-Client: <client id>
///     X-Vmcloud-Timestamp: <unix seconds>
///     X-Vmcloud-Nonce: <8 to 64 characters of its choice, new for every request>
///     X-Vmcloud-Signature: <hex HMAC-SHA256(signing key, canonical string)>
///
/// where the canonical string is METHOD, PATH (with its query, as sent), TIMESTAMP, NONCE and
/// the hex SHA-256 of the body, joined by "\n". A timestamp more than `maxSkew` away from the
/// appliance's clock is stale; a signature seen before is a replay.
package struct RequestSignature: Sendable, Equatable {
    package static let clientHeader = "X-Vmcloud-Client"
    package static let timestampHeader = "X-Vmcloud-Timestamp"
    package static let nonceHeader = "X-Vmcloud-Nonce"
    package static let signatureHeader = "X-Vmcloud-Signature"
    /// How far a timestamp may be from now, either way.
    package static let maxSkew: TimeInterval = 300

    package let clientId: Int64
    package let timestamp: Int64
    package let nonce: String
    /// Lower-case hex, 64 characters.
    package let signature: String

    package init(clientId: Int64, timestamp: Int64, nonce: String, signature: String) {
        self.clientId = clientId
        self.timestamp = timestamp
        self.nonce = nonce
        self.signature = signature
    }

    package static func canonical(method: String, path: String, timestamp: Int64, nonce: String, body: some Sequence<UInt8>) -> String {
        [method, path, String(timestamp), nonce, SHA256.hash(data: Data(body)).hex].joined(separator: "\n")
    }

    package static func sign(_ canonical: String, key: Data) -> String {
        Array(HMAC<SHA256>.authenticationCode(for: Data(canonical.utf8), using: SymmetricKey(data: key))).hex
    }

    /// Constant-time comparison of our signature with the one sent.
    package func matches(_ canonical: String, key: Data) -> Bool {
        guard let sent = Self.bytes(hex: signature) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(sent, authenticating: Data(canonical.utf8), using: SymmetricKey(data: key))
    }

    package func isFresh(now: Date) -> Bool {
        abs(now.timeIntervalSince1970 - TimeInterval(timestamp)) <= Self.maxSkew
    }

    /// Parses the four headers; nil when none is present, an error when some are missing or bad.
    package static func parse(header: (String) -> String?) throws(AuthFailure) -> RequestSignature? {
        let client = header(clientHeader), timestamp = header(timestampHeader)
        let nonce = header(nonceHeader), signature = header(signatureHeader)
        if client == nil, timestamp == nil, nonce == nil, signature == nil { return nil }
        guard let client, let timestamp, let nonce, let signature else {
            throw .malformed("a signed request needs all of \(clientHeader), \(timestampHeader), \(nonceHeader) and \(signatureHeader)")
        }
        guard let id = Int64(client), id > 0 else { throw .malformed("\(clientHeader) must be a client id") }
        guard let time = Int64(timestamp) else { throw .malformed("\(timestampHeader) must be unix seconds") }
        guard (8...64).contains(nonce.utf8.count), nonce.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw .malformed("\(nonceHeader) must be 8 to 64 printable characters")
        }
        // Strictly [0-9a-f]: UInt8(_:radix:) would also take "+a", and a second spelling of the
        // same MAC must not pass the replay check as a new signature.
        let lower = signature.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw .malformed("\(signatureHeader) must be 64 hex digits")
        }
        return RequestSignature(clientId: id, timestamp: time, nonce: nonce, signature: lower)
    }

    private static func bytes(hex: String) -> Data? {
        guard hex.utf8.count % 2 == 0 else { return nil }
        var data = Data(capacity: hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            data.append(byte)
            index = next
        }
        return data
    }
}

/// Why a request was not authenticated (always a 401; the message says which rule failed).
package enum AuthFailure: Error, Equatable, CustomStringConvertible {
    case missing
    case malformed(String)
    case unknownKey
    case badSignature
    case stale
    case replayed
    case untrustedNetwork

    package var description: String {
        switch self {
        case .missing: return "this request needs a client key: Authorization: Bearer KEY, or a signed request (see the README)"
        case .malformed(let why): return why
        case .unknownKey: return "unknown or revoked key"
        case .badSignature: return "the signature does not match the request"
        case .stale: return "the signature's timestamp is more than \(Int(RequestSignature.maxSkew)) s from the appliance's clock"
        case .replayed: return "this signature was already used"
        case .untrustedNetwork: return "unauthenticated calls are allowed only from the operator's trusted networks"
        }
    }
}
