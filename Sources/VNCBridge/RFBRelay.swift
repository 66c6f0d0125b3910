import HummingbirdWebSocket
import Logging
import NIOCore

/// Relays one browser session between a WebSocket (noVNC's binary frames) and a VM's VNC unix
/// socket. The server's bytes go to the browser as they were read, without re-encoding; the
/// browser's bytes go through `RFBClientStreamFilter` (which drops input in `.view` mode).
///
/// Backpressure: each direction awaits its write before reading more, and NIO's async channels
/// stop reading a socket whose consumer is behind, so a slow browser slows only its own
/// stream. Memory per session is bounded by the VNC socket's read backlog
/// (`VNCSocket.inboundBacklog` reads of at most `VNCSocket.maxReadBytes`), the WebSocket's
/// largest frame and the channels' write buffers.
public struct RFBRelay: Sendable {
    /// Why a relay ended.
    public enum End: Sendable, Equatable {
        /// The browser closed the WebSocket.
        case clientClosed
        /// The VM's VNC server closed the connection.
        case vmClosed
        /// Access ended (`BridgeSessions.revoke`).
        case revoked
        /// The browser sent something the filter refuses, or a text frame.
        case rejected(String)
    }

    public let socketPath: String
    public let mode: RFBClientStreamFilter.Mode
    public let logger: Logger

    public init(socketPath: String, mode: RFBClientStreamFilter.Mode, logger: Logger) {
        self.socketPath = socketPath
        self.mode = mode
        self.logger = logger
    }

    /// Connects to the VM and relays until either side closes or `session` is revoked, then
    /// closes the WebSocket with a code that says why. Throws only when the VM's socket cannot
    /// be reached (before any byte was relayed).
    public func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        session: BridgeSession, eventLoop: any EventLoop
    ) async throws -> End {
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop)) {
            try await relay(inbound: inbound, outbound: outbound, session: session, eventLoop: eventLoop)
        }
    }

    private func relay(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        session: BridgeSession, eventLoop: any EventLoop
    ) async throws -> End {
        let vnc = try await VNCSocket.connect(path: socketPath, on: eventLoop)
        BridgeMetrics.sessions.increment()
        BridgeMetrics.activeSessions.increment()
        defer { BridgeMetrics.activeSessions.decrement() }
        // From here on a failing write or read means that side went away: it ends the relay
        // like a close, it is not an error of the bridge.
        let end = try await vnc.executeThenClose { fromVM, toVM in
            await withTaskGroup(of: End.self) { group in
                group.addTask {
                    do {
                        for try await buffer in fromVM {
                            BridgeMetrics.bytesToBrowser.increment(by: buffer.readableBytes)
                            do { try await outbound.write(.binary(buffer)) } catch { return .clientClosed }
                        }
                    } catch {}
                    return .vmClosed
                }
                group.addTask { [mode] in
                    await Self.forward(inbound, to: toVM, mode: mode)
                }
                group.addTask {
                    await session.revoked()
                    return .revoked
                }
                let first = await group.next() ?? .clientClosed
                group.cancelAll()
                return first
            }
        }
        switch end {
        case .clientClosed:
            break
        case .vmClosed:
            try? await outbound.close(.goingAway, reason: "the VM closed the connection")
        case .revoked:
            try? await outbound.close(.unknown(VNCBridge.revokedCloseCode), reason: "access revoked")
        case .rejected(let reason):
            logger.notice("viewer stream rejected", metadata: ["reason": "\(reason)"])
            try? await outbound.close(.policyViolation, reason: String(reason.prefix(120)))
        }
        return end
    }

    /// Browser -> VM: every data frame's payload through the filter, in order.
    private static func forward(
        _ inbound: WebSocketInboundStream, to vm: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        mode: RFBClientStreamFilter.Mode
    ) async -> End {
        var filter = RFBClientStreamFilter(mode: mode)
        var output: [UInt8] = []
        do {
            for try await frame in inbound {
                if frame.opcode == .text { return .rejected("text frames are not RFB; use binary frames") }
                output.removeAll(keepingCapacity: true)
                var rejection: RFBFilterError?
                do { try filter.filter(frame.data.readableBytesView, into: &output) } catch { rejection = error }
                // On a rejection, what preceded the bad message is valid and goes through first.
                if !output.isEmpty {
                    BridgeMetrics.bytesToVM.increment(by: output.count)
                    do { try await vm.write(ByteBuffer(bytes: output)) } catch { return .vmClosed }
                }
                if let rejection { return .rejected("\(rejection) after \(filter.bytesConsumed) bytes") }
            }
        } catch {}
        return .clientClosed
    }
}
