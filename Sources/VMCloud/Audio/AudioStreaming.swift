import AudioRelay
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import OggOpus
import Synchronization
import VMCloudCore

/// Writes one listener's audio to a client, as an Ogg/Opus HTTP body or as WebSocket messages.
/// Both stop when `until` returns (access revoked) or the client goes away.
package enum AudioStreaming {
    /// The HTTP response for a player (`<audio>`, VLC, ffplay, mpv): an endless Ogg/Opus stream
    /// with its own serial number starting at the listener's first packet, one page per packet.
    package static func oggResponse(
        _ channel: AudioChannel,
        opened: @escaping @Sendable () -> (until: @Sendable () async -> Void, done: @Sendable () -> Void)
    ) throws -> Response {
        // Subscribed before the 200 goes out, so a full VM is refused with a status.
        let subscription = try subscribe(channel)
        return Response(
            status: .ok,
            headers: [.contentType: "audio/ogg", .cacheControl: "no-store", .init("X-Content-Type-Options")!: "nosniff"],
            body: ResponseBody { writer in
                let session = opened()
                defer { session.done() }
                ApplianceMetrics.audioHTTP.sessions.increment()
                ApplianceMetrics.audioActiveSessions.increment()
                defer { ApplianceMetrics.audioActiveSessions.decrement() }
                let watcher = Task { await session.until(); subscription.cancel() }
                defer { watcher.cancel(); subscription.cancel() }
                let ogg = try OggOpusStream(preSkip: channel.preSkip)
                // Every byte of the body is counted, headers and the last page too.
                func send(_ bytes: [UInt8]) async throws {
                    ApplianceMetrics.audioHTTP.bytes.increment(by: bytes.count)
                    try await writer.write(ByteBuffer(bytes: bytes))
                }
                try await send(ogg.headerPages)
                for await packet in subscription.packets {
                    try await send(try ogg.pages(for: packet.opus))
                }
                try await send(ogg.finish())
                try await writer.finish(nil)
            })
    }

    static func subscribe(_ channel: AudioChannel) throws -> AudioChannel.Subscription {
        do {
            return try channel.listen()
        } catch {
            throw APIError(status: .serviceUnavailable, code: "too_many_listeners", message: "\(error)")
        }
    }

    /// What a WebSocket client is told first, as a text message.
    struct Hello: Encodable {
        let codec = "opus"
        let sampleRate = AudioFormat.sampleRate
        let channels = AudioFormat.channels
        let samplesPerPacket: Int
        let preSkip: Int
        let packet = "binary messages: sequence (u64) and capture time (i64, microseconds since the Unix epoch), big-endian, then one Opus packet"
    }

    /// Sends the hello, then one binary message per packet until `until` returns (close code
    /// 4001) or the client closes or goes away.
    package static func webSocket(
        _ channel: AudioChannel, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        until: @escaping @Sendable () async -> Void
    ) async throws {
        let subscription: AudioChannel.Subscription
        do {
            subscription = try subscribe(channel)
        } catch {
            try? await outbound.close(.unknown(4029), reason: "too many listeners")
            return
        }
        let hello = Hello(samplesPerPacket: channel.samplesPerChannel, preSkip: channel.preSkip)
        try await outbound.write(.text(String(decoding: try JSONEncoder().encode(hello), as: UTF8.self)))
        let revoked = RevokedFlag()
        let watcher = Task { await until(); revoked.set(); subscription.cancel() }
        // The client sends nothing we need; reading notices its close or disappearance.
        let reader = Task {
            for try await _ in inbound.messages(maxSize: 1 << 16) {}
            subscription.cancel()
        }
        defer { watcher.cancel(); reader.cancel(); subscription.cancel() }
        ApplianceMetrics.audioWebSocket.sessions.increment()
        ApplianceMetrics.audioActiveSessions.increment()
        defer { ApplianceMetrics.audioActiveSessions.decrement() }
        for await packet in subscription.packets {
            let message = packet.wireMessage
            ApplianceMetrics.audioWebSocket.bytes.increment(by: message.count)
            try await outbound.write(.binary(ByteBuffer(bytes: message)))
        }
        if revoked.isSet {
            try? await outbound.close(.unknown(4001), reason: "access revoked")
        } else {
            try? await outbound.close(.normalClosure, reason: nil)
        }
    }

    private final class RevokedFlag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }
}
