/// The client's side of the RFB 3.7/3.8 handshake (RFC 6143 §7.1-7.3).
enum RFBHandshake {
    static let versionLength = 12

    /// Accepts `RFB 003.007\n` and `RFB 003.008\n`. 3.3 is refused on purpose (see
    /// `RFBFilterError.unsupportedVersion`); other versions QEMU would map to 3.3 or reject.
    static func checkVersion(_ v: [UInt8]) throws(RFBFilterError) {
        let prefix: [UInt8] = Array("RFB ".utf8)
        guard v.count == versionLength, Array(v[0..<4]) == prefix, v[7] == UInt8(ascii: "."),
              v[11] == UInt8(ascii: "\n"),
              let major = decimal(v[4..<7]), let minor = decimal(v[8..<11])
        else { throw .malformedVersion }
        guard major == 3, minor == 7 || minor == 8 else {
            throw .unsupportedVersion(major: major, minor: minor)
        }
    }

    /// The one security type the bridge proxies is None (1): QEMU's unix socket offers it and
    /// then the client sends nothing but ClientInit, so the filter never needs server bytes.
    static func checkSecurityType(_ type: UInt8) throws(RFBFilterError) {
        switch type {
        case 1: return
        case 2: throw .vncAuthSelected
        default: throw .unsupportedSecurityType(type)
        }
    }

    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for d in digits {
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(d - UInt8(ascii: "0"))
        }
        return value
    }
}
