import Crypto
import Foundation

/// A client's secret key and what the store keeps of it. The key itself is shown once and
/// never stored; the store keeps its SHA-256 (bearer look-up) and a separate derived HMAC key
/// (signature checks), so neither can be turned back into the key. The HMAC key does let its
/// holder sign as the client: the database must stay as private as the keys (mode 0600).
package struct ClientKey: Sendable {
    package let text: String

    package init(text: String) {
        self.text = text
    }

    /// 32 random bytes, base64url, with a prefix that makes a leaked key easy to recognise.
    package static func generate() -> ClientKey {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return ClientKey(text: "vmc_" + Data(bytes).base64URL)
    }

    /// What bearer keys are looked up by.
    package static func hash(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).hex
    }

    /// The HMAC-SHA256 key a client signs with: SHA-256 of "vmcloud-signing-key:" + key. A
    /// client computes it from its key the same way (see README, "Signed requests").
    package static func signingKey(_ text: String) -> Data {
        Data(SHA256.hash(data: Data("vmcloud-signing-key:\(text)".utf8)))
    }

    package var hash: String { Self.hash(text) }
    package var signingKey: Data { Self.signingKey(text) }

    /// Keys we issue are `vmc_` + 43 base64url characters; anything else cannot be one.
    package static func looksValid(_ text: String) -> Bool {
        text.utf8.count == 47 && text.hasPrefix("vmc_")
            && text.utf8.dropFirst(4).allSatisfy { $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}

extension Data {
    package var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

extension Sequence where Element == UInt8 {
    package var hex: String { map { String(format: "%02x", $0) }.joined() }
}

extension Digest {
    package var hex: String { Array(self).hex }
}
