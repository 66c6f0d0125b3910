/// Why `RFBClientStreamFilter` ended a session. Every case is fatal: after it the stream can no
/// longer be framed, so the bridge must close both sides.
public enum RFBFilterError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The 12 bytes were not `RFB xxx.yyy\n` with decimal digits.
    case malformedVersion
    /// Well-formed but not 3.7/3.8. 3.3 is refused because there the server alone picks the
    /// security type, so the filter could not tell whether a 16-byte VNC-auth response follows.
    case unsupportedVersion(major: Int, minor: Int)
    /// The client chose VNC authentication (type 2). The bridge only proxies to QEMU's unix
    /// socket, which offers None; a password exchange would mean a misconfigured VM.
    case vncAuthSelected
    /// Any security type other than None (1) and VNC (2).
    case unsupportedSecurityType(UInt8)
    /// A client message type this filter (and QEMU) does not know: framing is lost.
    case unknownMessageType(UInt8)
    /// Message type 255 (QEMU) with a sub-type other than 0 (extended key) or 1 (audio).
    case unknownQEMUSubtype(UInt8)
    /// QEMU audio message (255/1) with an operation other than 0, 1, 2.
    case unknownQEMUAudioOperation(UInt16)
    /// ClientCutText longer than `RFBClientStreamFilter.maxCutTextLength` (QEMU's own limit).
    case cutTextTooLong(Int)
    /// SetEncodings with more than `RFBClientStreamFilter.maxEncodings` entries.
    case tooManyEncodings(Int)

    public var description: String {
        switch self {
        case .malformedVersion: "malformed RFB ProtocolVersion"
        case .unsupportedVersion(let major, let minor): "unsupported RFB version \(major).\(minor) (need 3.7 or 3.8)"
        case .vncAuthSelected: "client selected VNC authentication; only security type None is proxied"
        case .unsupportedSecurityType(let type): "unsupported security type \(type); only None (1) is proxied"
        case .unknownMessageType(let type): "unknown client message type \(type)"
        case .unknownQEMUSubtype(let subtype): "unknown QEMU client message sub-type \(subtype)"
        case .unknownQEMUAudioOperation(let op): "unknown QEMU audio operation \(op)"
        case .cutTextTooLong(let length): "ClientCutText of \(length) bytes exceeds the limit"
        case .tooManyEncodings(let count): "SetEncodings with \(count) encodings exceeds the limit"
        }
    }
}
