import Crypto
import Foundation

/// Makes viewer tokens. A token is the HMAC-SHA256, under a secret kept in the state directory,
/// of what it grants (handle, VM, VM session, scope): unguessable without the secret, and the
/// same on every handle-status call, so the store only needs its hash (`AccessTokenStore`).
package struct AccessTokens: Sendable {
    /// The key's bytes (SymmetricKey is not Sendable).
    package let secret: [UInt8]

    package init(secret: [UInt8]) {
        self.secret = secret
    }

    /// Loads the secret from `path`, creating it (32 random bytes, mode 0600) at first start.
    package static func load(path: String) throws -> AccessTokens {
        if let data = FileManager.default.contents(atPath: path) {
            guard data.count == 32 else {
                throw AccessTokens.SecretError(description: "\(path) must hold exactly 32 bytes (delete it to make a new one; open viewer links stop working)")
            }
            return AccessTokens(secret: Array(data))
        }
        let data = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw AccessTokens.SecretError(description: "cannot write the viewer token secret \(path)")
        }
        return AccessTokens(secret: Array(data))
    }

    /// The token granting `scope` on `vm` (in `session`) to `handle`: 43 URL-safe characters.
    package func token(handle: Int64, vm: Int64, session: Int64, scope: AccessScope) -> String {
        let grant = "vmcloud-viewer:\(handle):\(vm):\(session):\(scope.rawValue)"
        let mac = HMAC<SHA256>.authenticationCode(for: Data(grant.utf8), using: SymmetricKey(data: secret))
        return Data(mac).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// What the store keeps of a token.
    package static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).hex
    }

    /// Cheap shape check before any lookup: 43 base64url characters.
    package static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && token.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
        }
    }
}

extension AccessTokens {
    /// The secret's file is unusable: `serve` stops with this reason.
    package struct SecretError: Error, CustomStringConvertible {
        package let description: String

        package init(description: String) {
            self.description = description
        }
    }
}
