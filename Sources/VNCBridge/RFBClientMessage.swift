/// Framing of client-to-server RFB messages after ClientInit (RFC 6143 §7.5 plus the QEMU
/// extensions QEMU's ui/vnc.c accepts). Pure: looks only at the header bytes gathered so far.
enum RFBClientMessage {
    /// What the filter should do with a header of exactly the length it last asked for.
    enum Inspection: Equatable {
        /// Gather this many header bytes in total, then inspect again.
        case needMore(Int)
        /// The header is complete; `payload` bytes follow and are streamed, never buffered.
        /// `carriesInput` marks what a view-only session must not reach the VM.
        case complete(payload: Int, carriesInput: Bool)
        /// SetEncodings' 4-byte header; `count` encodings (4 bytes each) follow. A view session
        /// rewrites the list (`withoutClipboard`), so it is gathered rather than streamed.
        case setEncodings(count: Int)
    }

    /// QEMU's (and noVNC's) extended clipboard pseudo-encoding. QEMU sends clipboard text only
    /// to clients that list it, so a view session's list must not carry it.
    static let extendedClipboardEncoding: UInt32 = 0xC0A1_E5CE

    /// Longest header ever gathered (SetPixelFormat); bounds the filter's buffer.
    static let maxHeaderLength = 20

    static func inspect(_ h: [UInt8], maxEncodings: Int, maxCut: Int) throws(RFBFilterError) -> Inspection {
        let n = h.count
        switch h[0] {
        case 0: // SetPixelFormat: type, 3 padding, 16-byte PIXEL_FORMAT.
            return n == 1 ? .needMore(20) : .complete(payload: 0, carriesInput: false)
        case 2: // SetEncodings: type, padding, u16 count, then count x s32.
            if n == 1 { return .needMore(4) }
            let count = Int(u16(h, 2))
            guard count <= maxEncodings else { throw .tooManyEncodings(count) }
            return .setEncodings(count: count)
        case 3: // FramebufferUpdateRequest: type, incremental, x, y, w, h.
            return n == 1 ? .needMore(10) : .complete(payload: 0, carriesInput: false)
        case 4: // KeyEvent: type, down, 2 padding, u32 keysym.
            return n == 1 ? .needMore(8) : .complete(payload: 0, carriesInput: true)
        case 5: // PointerEvent: type, button mask, u16 x, u16 y.
            return n == 1 ? .needMore(6) : .complete(payload: 0, carriesInput: true)
        case 6: // ClientCutText: type, 3 padding, s32 length. A negative length is QEMU's
                // extended clipboard (|length| bytes follow), as in QEMU's own parser.
            if n == 1 { return .needMore(8) }
            let length = Int(Int32(bitPattern: u32(h, 4)).magnitude)
            guard length <= maxCut else { throw .cutTextTooLong(length) }
            return .complete(payload: length, carriesInput: true)
        case 250: // XVP: type, padding, version, action. Power control: never for viewers.
            return n == 1 ? .needMore(4) : .complete(payload: 0, carriesInput: true)
        case 251: // SetDesktopSize: type, pad, u16 w, u16 h, u8 screens, pad, screens x 16.
                  // Resizes the VM's display, so a viewer may not send it.
            if n == 1 { return .needMore(8) }
            return .complete(payload: 16 * Int(h[6]), carriesInput: true)
        case 255: // QEMU: type, sub-type, ...
            return try inspectQEMU(h)
        default:
            throw .unknownMessageType(h[0])
        }
    }

    private static func inspectQEMU(_ h: [UInt8]) throws(RFBFilterError) -> Inspection {
        let n = h.count
        if n == 1 { return .needMore(2) }
        switch h[1] {
        case 0: // Extended key event: 255, 0, u16 down, u32 keysym, u32 keycode.
            return n == 2 ? .needMore(12) : .complete(payload: 0, carriesInput: true)
        case 1: // Audio: 255, 1, u16 operation; SetFormat (2) adds u8 fmt, u8 channels, u32 Hz.
            if n == 2 { return .needMore(4) }
            if n == 10 { return .complete(payload: 0, carriesInput: false) }
            switch u16(h, 2) {
            case 0, 1: return .complete(payload: 0, carriesInput: false)
            case 2: return .needMore(10)
            case let op: throw .unknownQEMUAudioOperation(op)
            }
        default:
            throw .unknownQEMUSubtype(h[1])
        }
    }

    /// A whole SetEncodings message for `encodings` (the list's bytes, 4 per encoding) without
    /// the extended clipboard pseudo-encoding, its count adjusted.
    static func setEncodingsWithoutClipboard(_ encodings: [UInt8]) -> [UInt8] {
        var kept: [UInt8] = []
        kept.reserveCapacity(encodings.count)
        for at in stride(from: 0, to: encodings.count - 3, by: 4) where u32(encodings, at) != extendedClipboardEncoding {
            kept.append(contentsOf: encodings[at..<at + 4])
        }
        let count = kept.count / 4
        return [2, 0, UInt8(count >> 8), UInt8(count & 0xff)] + kept
    }

    private static func u16(_ h: [UInt8], _ at: Int) -> UInt16 {
        UInt16(h[at]) << 8 | UInt16(h[at + 1])
    }

    private static func u32(_ h: [UInt8], _ at: Int) -> UInt32 {
        UInt32(h[at]) << 24 | UInt32(h[at + 1]) << 16 | UInt32(h[at + 2]) << 8 | UInt32(h[at + 3])
    }
}
