import VNCBridge

/// Builders for client-to-server RFB bytes, and a noVNC-like session made of them. Each message
/// knows whether a view-only filter must drop it, so tests can compute the expected output.
struct ClientMessage {
    var bytes: [UInt8]
    var isInput: Bool
    /// What a view-only filter forwards instead of `bytes`, when it rewrites the message.
    var viewBytes: [UInt8]? = nil
}

enum RFB {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    static func version(_ text: String = "RFB 003.008\n") -> ClientMessage { .init(bytes: Array(text.utf8), isInput: false) }
    static func security(_ type: UInt8 = 1) -> ClientMessage { .init(bytes: [type], isInput: false) }
    static func clientInit(shared: Bool = true) -> ClientMessage { .init(bytes: [shared ? 1 : 0], isInput: false) }

    /// 32 bpp, depth 24, true colour, little endian: what noVNC sends.
    static func setPixelFormat() -> ClientMessage {
        .init(bytes: [0, 0, 0, 0, 32, 24, 0, 1] + be16(255) + be16(255) + be16(255) + [16, 8, 0, 0, 0, 0], isInput: false)
    }

    static let extendedClipboard = Int32(bitPattern: 0xC0A1_E5CE)

    /// A view session's copy leaves out the extended clipboard pseudo-encoding.
    static func setEncodings(_ encodings: [Int32]) -> ClientMessage {
        func message(_ list: [Int32]) -> [UInt8] {
            [2, 0] + be16(UInt16(list.count)) + list.flatMap { be32(UInt32(bitPattern: $0)) }
        }
        let withoutClipboard = encodings.filter { $0 != extendedClipboard }
        return .init(bytes: message(encodings), isInput: false,
                     viewBytes: withoutClipboard.count == encodings.count ? nil : message(withoutClipboard))
    }

    static func updateRequest(incremental: Bool, w: UInt16 = 1280, h: UInt16 = 800) -> ClientMessage {
        .init(bytes: [3, incremental ? 1 : 0] + be16(0) + be16(0) + be16(w) + be16(h), isInput: false)
    }

    static func key(down: Bool, keysym: UInt32) -> ClientMessage {
        .init(bytes: [4, down ? 1 : 0, 0, 0] + be32(keysym), isInput: true)
    }

    static func pointer(mask: UInt8, x: UInt16, y: UInt16) -> ClientMessage {
        .init(bytes: [5, mask] + be16(x) + be16(y), isInput: true)
    }

    /// A negative `length` override builds QEMU's extended clipboard framing.
    static func cutText(_ text: [UInt8], length: Int32? = nil) -> ClientMessage {
        .init(bytes: [6, 0, 0, 0] + be32(UInt32(bitPattern: length ?? Int32(text.count))) + text, isInput: true)
    }

    static func qemuExtendedKey(down: Bool, keysym: UInt32, keycode: UInt32) -> ClientMessage {
        .init(bytes: [255, 0] + be16(down ? 1 : 0) + be32(keysym) + be32(keycode), isInput: true)
    }

    static func qemuAudio(operation: UInt16) -> ClientMessage {
        .init(bytes: [255, 1] + be16(operation) + (operation == 2 ? [3, 2] + be32(44100) : []), isInput: false)
    }

    static func setDesktopSize(w: UInt16, h: UInt16) -> ClientMessage {
        let screen = be32(0) + be16(0) + be16(0) + be16(w) + be16(h) + be32(0)
        return .init(bytes: [251, 0] + be16(w) + be16(h) + [1, 0] + screen, isInput: true)
    }

    /// What noVNC sends in a short session against QEMU, with every message kind QEMU takes.
    static func noVNCSession() -> [ClientMessage] {
        [
            version(), security(1), clientInit(),
            setPixelFormat(),
            // Tight, ZRLE, Hextile, Raw, CopyRect, then pseudo-encodings: JPEG quality,
            // compression level, DesktopSize, LastRect, Cursor, QEMU ext key, QEMU audio,
            // ExtendedDesktopSize, extended clipboard.
            setEncodings([7, 16, 5, 0, 1, -23, -250, -223, -224, -239, -258, -259, -308, extendedClipboard]),
            updateRequest(incremental: false),
            qemuAudio(operation: 2), qemuAudio(operation: 0),
            key(down: true, keysym: 0x61), key(down: false, keysym: 0x61),
            pointer(mask: 0, x: 10, y: 20), pointer(mask: 1, x: 11, y: 21), pointer(mask: 0, x: 11, y: 21),
            updateRequest(incremental: true),
            cutText(Array("hello from the clipboard".utf8)),
            cutText([0x10, 0, 0, 1] + Array(repeating: 0x78, count: 9), length: -13),
            qemuExtendedKey(down: true, keysym: 0xffe1, keycode: 0x2a),
            qemuExtendedKey(down: false, keysym: 0xffe1, keycode: 0x2a),
            setDesktopSize(w: 1024, h: 768),
            .init(bytes: [250, 0, 1, 2], isInput: true), // XVP reboot
            qemuAudio(operation: 1),
            updateRequest(incremental: true),
        ]
    }

    static func bytes(_ messages: [ClientMessage]) -> [UInt8] { messages.flatMap(\.bytes) }
    static func viewBytes(_ messages: [ClientMessage]) -> [UInt8] { messages.filter { !$0.isInput }.flatMap { $0.viewBytes ?? $0.bytes } }
    static let handshake = bytes([version(), security(1), clientInit()])
}

/// SplitMix64: a tiny seeded generator so fuzz failures replay exactly.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds `input` cut at `cuts` (sorted offsets) and returns what was forwarded, plus the error
/// if the filter ended the session.
func feed(_ input: [UInt8], cuts: [Int], mode: RFBClientStreamFilter.Mode) -> (output: [UInt8], error: RFBFilterError?, filter: RFBClientStreamFilter) {
    var filter = RFBClientStreamFilter(mode: mode)
    var output: [UInt8] = []
    var start = 0
    for end in cuts + [input.count] where end >= start {
        do {
            try filter.filter(input[start..<end], into: &output)
        } catch {
            return (output, error, filter)
        }
        start = end
    }
    return (output, nil, filter)
}

/// Random cut points, chunk sizes from 1 to `maxChunk`.
func randomCuts(count: Int, maxChunk: Int, using rng: inout SeededGenerator) -> [Int] {
    var cuts: [Int] = []
    var at = 0
    while true {
        at += Int.random(in: 1...maxChunk, using: &rng)
        if at >= count { return cuts }
        cuts.append(at)
    }
}
