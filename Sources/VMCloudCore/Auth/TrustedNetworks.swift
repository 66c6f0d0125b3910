import NIOCore

/// The networks whose unauthenticated calls to the six vmcloud endpoints are allowed (config
/// `trustedNetworks`, default loopback only), so that an existing control app on the host keeps
/// working without a key.
package struct TrustedNetworks: Sendable, Equatable {
    package struct Network: Sendable, Equatable, CustomStringConvertible {
        package let address: [UInt8]
        package let prefix: Int

        package init(address: [UInt8], prefix: Int) {
            self.address = address
            self.prefix = prefix
        }
        package var description: String { "\(Self.format(address))/\(prefix)" }

        package func contains(_ other: [UInt8]) -> Bool {
            guard other.count == address.count else { return false }
            var bits = prefix
            for (a, b) in zip(address, other) {
                guard bits > 0 else { return true }
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if a & mask != b & mask { return false }
                bits -= 8
            }
            return true
        }

        private static func format(_ bytes: [UInt8]) -> String {
            bytes.count == 4 ? bytes.map(String.init).joined(separator: ".")
                : stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
        }
    }

    package let networks: [Network]

    private static let mappedPrefix: ArraySlice<UInt8> = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]

    package static let loopback = try! TrustedNetworks(["127.0.0.0/8", "::1/128"])

    package struct Invalid: Error, CustomStringConvertible { package let description: String }

    /// Parses `ADDRESS/PREFIX` entries (IPv4 or IPv6); a bare address is a /32 or /128.
    package init(_ entries: [String]) throws {
        networks = try entries.map { entry in
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let bytes = Self.bytes(String(parts[0])) else {
                throw Invalid(description: "trusted network '\(entry.prefix(64))' is not ADDRESS/PREFIX")
            }
            let bits = bytes.count * 8
            let prefix = parts.count == 2 ? Int(parts[1]) : bits
            guard let prefix, (0...bits).contains(prefix) else {
                throw Invalid(description: "trusted network '\(entry.prefix(64))' has a prefix outside 0...\(bits)")
            }
            // Peers arrive as IPv4 even on a dual-stack socket; so must ::ffff:a.b.c.d entries.
            if bytes.count == 16, bytes.prefix(12) == Self.mappedPrefix, prefix >= 96 {
                return Network(address: Array(bytes.suffix(4)), prefix: prefix - 96)
            }
            return Network(address: bytes, prefix: prefix)
        }
    }

    package func contains(_ peer: SocketAddress?) -> Bool {
        guard let peer else { return false }
        let bytes: [UInt8]
        switch peer {
        case .v4(let v4): bytes = withUnsafeBytes(of: v4.address.sin_addr.s_addr) { Array($0) }
        case .v6(let v6):
            let raw = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
            bytes = raw.prefix(12) == Self.mappedPrefix ? Array(raw.suffix(4)) : raw
        case .unixDomainSocket: return true
        }
        return networks.contains { $0.contains(bytes) }
    }

    private static func bytes(_ text: String) -> [UInt8]? {
        if let address = try? SocketAddress(ipAddress: text, port: 0) {
            switch address {
            case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr.s_addr) { Array($0) }
            case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            case .unixDomainSocket: return nil
            }
        }
        return nil
    }
}
