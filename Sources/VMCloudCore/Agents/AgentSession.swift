import AgentProtocol
import Logging
import NIOCore
import NIOPosix

package enum AgentError: Error, CustomStringConvertible {
    case timeout(AgentMessage.Kind, seconds: Double)
    case disconnected
    case closed
    case refused(String)
    case unexpectedReply(AgentMessage.Kind)

    package var description: String {
        switch self {
        case .timeout(let kind, let s): return "agent did not answer \(kind.rawValue) within \(s) s"
        case .disconnected: return "agent channel disconnected"
        case .closed: return "agent session closed"
        case .refused(let message): return "agent error: \(message)"
        case .unexpectedReply(let kind): return "unexpected agent reply \(kind.rawValue)"
        }
    }
}

/// The host side of one VM's virtio-serial channel. QEMU listens on a unix socket; the session
/// connects (and reconnects while the VM lives), says hello, matches replies to requests by id,
/// and hands unsolicited messages (the guest's hello) to `onMessage`. Everything a guest sends
/// goes through `AgentMessage.decode`, which enforces the size limit and validates fields.
package actor AgentSession {
    package let vmId: Int64
    private let socketPath: String
    private let group: EventLoopGroup
    private let logger: Logger
    private let onMessage: @Sendable (AgentMessage) async -> Void
    private let onReject: @Sendable (String) async -> Void

    private var writer: NIOAsyncChannelOutboundWriter<ByteBuffer>?
    private var nextId: UInt64 = 1
    private var pending: [UInt64: CheckedContinuation<AgentMessage, Error>] = [:]
    private var connectedWaiters: [CheckedContinuation<Void, Error>] = []
    private var runTask: Task<Void, Never>?
    private var isClosed = false

    /// `onMessage` gets every valid unsolicited message; `onReject` the reason for every line
    /// that was not accepted.
    package init(vmId: Int64, socketPath: String, group: EventLoopGroup, logger: Logger,
         onMessage: @escaping @Sendable (AgentMessage) async -> Void,
         onReject: @escaping @Sendable (String) async -> Void) {
        self.vmId = vmId
        self.socketPath = socketPath
        self.group = group
        self.logger = logger
        self.onMessage = onMessage
        self.onReject = onReject
    }

    package func start() {
        guard runTask == nil, !isClosed else { return }
        runTask = Task { await self.connectLoop() }
    }

    /// Ends the session: pending requests fail, no reconnect.
    package func close() {
        isClosed = true
        runTask?.cancel()
        failAll(AgentError.closed)
        writer?.finish()
        writer = nil
    }

    /// Sends a request and waits for the reply carrying the same id. Waits for a connection
    /// first; the whole exchange is bounded by `timeout`.
    package func request(_ message: AgentMessage, timeout: Double) async throws -> AgentMessage {
        var message = message
        let id = nextId
        nextId += 1
        message.id = id
        let timer = Task {
            try await Task.sleep(for: .seconds(timeout))
            self.timeOut(id: id, kind: message.type, seconds: timeout)
        }
        defer { timer.cancel() }
        try await waitConnected(timeout: timeout)
        let reply = try await withCheckedThrowingContinuation { continuation in
            pending[id] = continuation
            send(message)
        }
        if reply.type == .error { throw AgentError.refused(reply.message ?? "unspecified") }
        return reply
    }

    // MARK: - Connection

    private func connectLoop() async {
        var delay = 0.05
        while !Task.isCancelled, !isClosed {
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(2))
                    .connect(unixDomainSocketPath: socketPath) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                delay = 0.05
                try await channel.executeThenClose { inbound, outbound in
                    self.attach(outbound)
                    var splitter = AgentLineSplitter()
                    for try await buffer in inbound {
                        for item in splitter.append(buffer.readableBytesView) {
                            await self.handle(item)
                        }
                    }
                }
                logger.debug("agent channel closed", metadata: ["vm": "\(vmId)"])
            } catch {
                logger.trace("agent channel connect failed", metadata: ["vm": "\(vmId)", "error": "\(error)"])
            }
            detach()
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 1)
        }
    }

    private func attach(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        writer = outbound
        // The guest's own hello may have been sent before anyone listened: ask again. The
        // leading newline ends any half line a previous connection left in the guest's buffer.
        Task { try? await outbound.write(ByteBuffer(string: "\n")) }
        send(AgentMessage(type: .hello))
        let waiters = connectedWaiters
        connectedWaiters = []
        waiters.forEach { $0.resume() }
    }

    private func detach() {
        writer = nil
        failAll(AgentError.disconnected)
    }

    private func waitConnected(timeout: Double) async throws {
        if writer != nil { return }
        if isClosed { throw AgentError.closed }
        try await withCheckedThrowingContinuation { connectedWaiters.append($0) }
    }

    private func send(_ message: AgentMessage) {
        guard let writer else { return }
        let bytes = ByteBuffer(bytes: message.encodedLine())
        Task { try? await writer.write(bytes) }
    }

    // MARK: - Inbound

    private func handle(_ item: AgentLineSplitter.Item) async {
        switch item {
        case .tooLong(let n):
            await onReject("line of \(n) bytes exceeds the \(agentMaxLineBytes)-byte limit")
        case .line(let line):
            guard !line.isEmpty else { return }
            do {
                let message = try AgentMessage.decode(line: line)
                if let id = message.id, let continuation = pending.removeValue(forKey: id) {
                    continuation.resume(returning: message)
                } else {
                    await onMessage(message)
                }
            } catch {
                await onReject("\(error)")
            }
        }
    }

    private func timeOut(id: UInt64, kind: AgentMessage.Kind, seconds: Double) {
        pending.removeValue(forKey: id)?.resume(throwing: AgentError.timeout(kind, seconds: seconds))
        // A request still waiting for a connection gives up too.
        if writer == nil {
            let waiters = connectedWaiters
            connectedWaiters = []
            waiters.forEach { $0.resume(throwing: AgentError.timeout(kind, seconds: seconds)) }
        }
    }

    private func failAll(_ error: Error) {
        let waiting = pending
        pending = [:]
        waiting.values.forEach { $0.resume(throwing: error) }
        if isClosed {
            let waiters = connectedWaiters
            connectedWaiters = []
            waiters.forEach { $0.resume(throwing: error) }
        }
    }
}
