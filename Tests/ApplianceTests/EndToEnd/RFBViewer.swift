import Foundation
import Logging
import NIOCore
import WSClient

/// A minimal RFB 3.8 viewer over the appliance's WebSocket bridge, as noVNC would talk to it:
/// handshake, raw-encoded framebuffer updates, key and pointer events.
struct RFBViewer {
    struct Refused: Error, CustomStringConvertible {
        let description: String
    }

    /// Server facts learned in the handshake.
    struct ServerInit: Sendable {
        let width: Int
        let height: Int
        let bitsPerPixel: Int
        let name: String
    }

    /// Opens `url`, runs `script` on the connected session, and returns its result along with
    /// the close frame the server ended with. Throws `Refused` if the upgrade is refused.
    static func session<T: Sendable>(
        _ url: String, _ script: @escaping @Sendable (inout RFBStream) async throws -> T
    ) async throws -> (result: T?, close: WebSocketCloseFrame?) {
        let result = ResultBox<T>()
        var config = WebSocketClientConfiguration()
        config.maxFrameSize = 1 << 24
        config.closeTimeout = .seconds(2)
        let close: WebSocketCloseFrame?
        do {
            close = try await WebSocketClient.connect(url: url, configuration: config, logger: Logger(label: "rfb-viewer")) { inbound, outbound, _ in
                var stream = RFBStream(iterator: inbound.makeAsyncIterator(), outbound: outbound)
                result.value = try await script(&stream)
            }
        } catch let error as WebSocketClientError {
            throw Refused(description: "\(error)")
        }
        return (result.value, close)
    }

    final class ResultBox<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: T?
        var value: T? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }
}

/// The byte stream inside the WebSocket, with RFB's client messages.
struct RFBStream {
    var iterator: WebSocketInboundStream.AsyncIterator
    let outbound: WebSocketOutboundWriter
    private var buffered: [UInt8] = []

    init(iterator: WebSocketInboundStream.AsyncIterator, outbound: WebSocketOutboundWriter) {
        self.iterator = iterator
        self.outbound = outbound
    }

    struct Closed: Error {}

    mutating func read(_ count: Int) async throws -> [UInt8] {
        while buffered.count < count {
            guard let frame = try await iterator.next() else { throw Closed() }
            buffered += Array(frame.data.readableBytesView)
        }
        defer { buffered.removeFirst(count) }
        return Array(buffered.prefix(count))
    }

    /// Reads until the server closes; returns the bytes that came meanwhile.
    mutating func drainUntilClosed() async throws -> Int {
        var count = 0
        while let frame = try await iterator.next() { count += frame.data.readableBytes }
        return count
    }

    func send(_ bytes: [UInt8]) async throws {
        try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
    }

    /// Version 3.8, security None, shared ClientInit, raw encoding only.
    mutating func handshake() async throws -> RFBViewer.ServerInit {
        let version = String(decoding: try await read(12), as: UTF8.self)
        guard version.hasPrefix("RFB 003.") else { throw RFBViewer.Refused(description: "not RFB: \(version)") }
        try await send(Array("RFB 003.008\n".utf8))
        let typeCount = Int(try await read(1)[0])
        guard typeCount > 0 else { throw RFBViewer.Refused(description: "server offers no security type") }
        let types = try await read(typeCount)
        guard types.contains(1) else { throw RFBViewer.Refused(description: "no security None in \(types)") }
        try await send([1])
        guard try await read(4) == [0, 0, 0, 0] else { throw RFBViewer.Refused(description: "security failed") }
        try await send([1])  // shared
        let header = try await read(24)
        let nameLength = Int(u32(header, 20))
        let name = String(decoding: try await read(nameLength), as: UTF8.self)
        // SetEncodings: raw (0) only, so every update is plain pixels we can skip by size.
        try await send([2, 0, 0, 1, 0, 0, 0, 0])
        return RFBViewer.ServerInit(width: Int(u16(header, 0)), height: Int(u16(header, 2)), bitsPerPixel: Int(header[4]), name: name)
    }

    func requestUpdate(incremental: Bool, width: Int, height: Int) async throws {
        try await send([3, incremental ? 1 : 0, 0, 0, 0, 0, UInt8(width >> 8), UInt8(width & 0xff), UInt8(height >> 8), UInt8(height & 0xff)])
    }

    /// Reads server messages until a FramebufferUpdate has been read whole; returns its
    /// rectangles' total pixel count.
    mutating func readFramebufferUpdate(bitsPerPixel: Int) async throws -> Int {
        while true {
            let type = try await read(1)[0]
            switch type {
            case 0:
                let count = Int(u16(try await read(3), 1))
                var pixels = 0
                for _ in 0..<count {
                    let rect = try await read(12)
                    let (w, h, encoding) = (Int(u16(rect, 4)), Int(u16(rect, 6)), Int32(bitPattern: u32(rect, 8)))
                    guard encoding == 0 else { throw RFBViewer.Refused(description: "unexpected encoding \(encoding)") }
                    _ = try await read(w * h * bitsPerPixel / 8)
                    pixels += w * h
                }
                return pixels
            case 2:  // Bell
                continue
            case 3:  // ServerCutText
                let header = try await read(7)
                _ = try await read(Int(u32(header, 3)))
            default:
                throw RFBViewer.Refused(description: "unexpected server message \(type)")
            }
        }
    }

    /// Presses and releases `keysym`.
    func typeKey(_ keysym: UInt32) async throws {
        for down: UInt8 in [1, 0] {
            try await send([4, down, 0, 0] + be32(keysym))
        }
    }

    func movePointer(x: Int, y: Int, buttons: UInt8 = 0) async throws {
        try await send([5, buttons, UInt8(x >> 8), UInt8(x & 0xff), UInt8(y >> 8), UInt8(y & 0xff)])
    }

    private func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }
    private func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
}
