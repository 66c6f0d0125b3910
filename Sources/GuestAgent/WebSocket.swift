// RFC 6455 WebSocket client, just what DevTools needs: the opening handshake (with the
// Sec-WebSocket-Accept check), masked client frames, reassembly of fragmented messages,
// ping/pong and the closing handshake. Messages above `maxMessage` are skipped, not buffered;
// the caller gets their first bytes so it can still tell whose reply it was.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

enum WebSocketMessage {
    case text([UInt8])
    case binary([UInt8])
    /// Too large to keep: its size and first `oversizedPrefix` bytes.
    case oversized(size: Int, prefix: [UInt8])
}

final class WebSocket: @unchecked Sendable {
    static let oversizedPrefix = 256
    let maxMessage: Int
    private let connection: TCPConnection
    private let reader: ByteReader
    /// Frames from several threads (CDP calls, the reader's pongs) must not interleave.
    private let writeLock = Lock()
    private var closeSent = false

    /// Connects to ws://127.0.0.1:`port``path`.
    init(port: UInt16, path: String, maxMessage: Int, timeout: Double = 10) throws {
        self.maxMessage = maxMessage
        let deadline = Deadline(seconds: timeout)
        connection = try TCPConnection(loopbackPort: port, deadline: deadline)
        reader = ByteReader(connection)
        let key = Data(randomBytes(16)).base64EncodedString()
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try connection.write(Array(request.utf8), deadline: deadline)
        let head = try HTTPClient.readHead(reader, deadline: deadline)
        guard head.status == 101 else { throw NetworkError(description: "WebSocket handshake: HTTP \(head.status)") }
        guard head.headers["upgrade"]?.lowercased() == "websocket",
              head.headers["connection"]?.lowercased().contains("upgrade") == true else {
            throw NetworkError(description: "WebSocket handshake: no Upgrade: websocket")
        }
        let expected = Data(sha1(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
        guard head.headers["sec-websocket-accept"] == expected else {
            throw NetworkError(description: "WebSocket handshake: wrong Sec-WebSocket-Accept")
        }
    }

    func sendText(_ text: [UInt8], timeout: Double = 10) throws {
        try sendFrame(opcode: 0x1, payload: text, deadline: Deadline(seconds: timeout))
    }

    /// Client frames are always masked (RFC 6455 5.3).
    private func sendFrame(opcode: UInt8, payload: [UInt8], deadline: Deadline) throws {
        var frame: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            frame.append(0x80 | UInt8(n))
        } else if n <= 0xFFFF {
            frame += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for i in (0..<8).reversed() { frame.append(UInt8(truncatingIfNeeded: UInt64(n) >> (UInt64(i) * 8))) }
        }
        let mask = randomBytes(4)
        frame += mask
        frame.reserveCapacity(frame.count + n)
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i & 3]) }
        try writeLock.withLock {
            guard !closeSent else { throw NetworkError(description: "WebSocket is closed") }
            if opcode == 0x8 { closeSent = true }
            try connection.write(frame, deadline: deadline)
        }
    }

    /// The next data message; throws when the connection ends (close frame, EOF, error).
    /// Waits up to `idleTimeout` for a frame to start, then `frameTimeout` for the rest of it.
    func receive(idleTimeout: Double = 86400, frameTimeout: Double = 60) throws -> WebSocketMessage {
        var message: [UInt8] = []
        var messageSize = 0
        var messageOpcode: UInt8 = 0
        var inMessage = false
        while true {
            let header = try reader.readExactly(2, deadline: Deadline(seconds: inMessage ? frameTimeout : idleTimeout))
            let deadline = Deadline(seconds: frameTimeout)
            let fin = header[0] & 0x80 != 0
            let opcode = header[0] & 0x0F
            guard header[0] & 0x70 == 0 else { throw failed(1002, "reserved bits set (no extension was negotiated)") }
            guard header[1] & 0x80 == 0 else { throw failed(1002, "server frames must not be masked") }
            var length = UInt64(header[1] & 0x7F)
            if length == 126 {
                let b = try reader.readExactly(2, deadline: deadline)
                length = UInt64(b[0]) << 8 | UInt64(b[1])
            } else if length == 127 {
                length = try reader.readExactly(8, deadline: deadline).reduce(0) { $0 << 8 | UInt64($1) }
            }
            guard length <= UInt64(Int32.max) else { throw failed(1009, "frame of \(length) bytes") }
            let size = Int(length)
            if opcode >= 0x8 {
                // Control frames: at most 125 bytes, never fragmented, may come between fragments.
                guard fin, size <= 125 else { throw failed(1002, "bad control frame") }
                let payload = try reader.readExactly(size, deadline: deadline)
                switch opcode {
                case 0x8:
                    try? sendFrame(opcode: 0x8, payload: Array(payload.prefix(2)), deadline: Deadline(seconds: 1))
                    connection.close()
                    throw NetworkError(description: "WebSocket closed by peer")
                case 0x9: try sendFrame(opcode: 0xA, payload: payload, deadline: deadline)
                case 0xA: break
                default: throw failed(1002, "unknown control opcode \(opcode)")
                }
                continue
            }
            switch (opcode, inMessage) {
            case (0x0, true): break
            case (0x1, false), (0x2, false): messageOpcode = opcode; inMessage = true
            default: throw failed(1002, "unexpected opcode \(opcode)")
            }
            messageSize += size
            if messageSize <= maxMessage {
                message += try reader.readExactly(size, deadline: deadline)
            } else {
                // Keep only a prefix of what is already there; skip the rest of the payload.
                let keep = max(0, Self.oversizedPrefix - message.count)
                let head = try reader.readExactly(min(keep, size), deadline: deadline)
                message = Array(message.prefix(Self.oversizedPrefix)) + head
                try reader.skip(size - head.count, deadline: deadline)
            }
            guard fin else { continue }
            if messageSize > maxMessage { return .oversized(size: messageSize, prefix: message) }
            return messageOpcode == 0x1 ? .text(message) : .binary(message)
        }
    }

    /// Closing handshake (best effort), then the socket goes.
    func close() {
        try? sendFrame(opcode: 0x8, payload: [0x03, 0xE8], deadline: Deadline(seconds: 1))
        connection.shutdownBoth()
    }

    private func failed(_ code: UInt16, _ why: String) -> NetworkError {
        try? sendFrame(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)], deadline: Deadline(seconds: 1))
        connection.shutdownBoth()
        return NetworkError(description: "WebSocket protocol error: \(why)")
    }
}

/// Masks and handshake keys: the stdlib's generator reads getrandom(2).
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}
