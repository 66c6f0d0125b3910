import NIOCore
import NIOPosix

/// A connection to a VM's VNC server (QEMU's unix socket) as an async channel of byte buffers.
enum VNCSocket {
    /// Largest read from the VM: big enough that a full-screen update crosses in a few reads,
    /// small enough to bound what one session holds (see `inboundBacklog`).
    static let maxReadBytes = 256 * 1024
    /// Reads buffered before the socket stops reading (backpressure towards QEMU while the
    /// browser side is slow). At most `inboundBacklog * maxReadBytes` per session.
    static let inboundBacklog = 4

    static func connect(path: String, on eventLoop: any EventLoop) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: eventLoop)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: maxReadBytes))
            .connectTimeout(.seconds(2))
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: inboundBacklog)))
                }
            }
    }
}
