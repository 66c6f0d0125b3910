import AgentProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plays the guest side of a VM's agent channel for tests that need no real VM: it listens on
/// the unix socket where QEMU would (the host connects to it), answers like a guest agent, and
/// can send anything else a test wants, hostile lines included. Blocking I/O on its own thread.
final class FakeGuest: @unchecked Sendable {
    private let listener: Int32
    private var connection: Int32 = -1
    private let lock = NSLock()
    private var thread: Thread?
    /// Called for every line the host sends; returns the lines to answer with.
    private let answer: @Sendable (AgentMessage) -> [String]

    init(socketPath: String, answer: @escaping @Sendable (AgentMessage) -> [String] = FakeGuest.politeAgent) throws {
        self.answer = answer
        unlink(socketPath)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in socketPath.utf8.enumerated() where i < buffer.count - 1 { buffer[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 1) == 0 else { throw POSIXError(.EADDRINUSE) }
        let thread = Thread { [unowned self] in self.serve() }
        self.thread = thread
        thread.start()
    }

    /// Answers hello, status, ping and configure as a well-behaved agent would.
    static let politeAgent: @Sendable (AgentMessage) -> [String] = { message in
        let reply: AgentMessage? = switch message.type {
        case .hello: AgentMessage(type: .hello, agentVersion: "fake", ip: "10.0.2.15")
        case .status: AgentMessage(type: .state, id: message.id, ip: "10.0.2.15", history: [])
        case .ping: AgentMessage(type: .pong, id: message.id)
        case .configure: AgentMessage(type: .configured, id: message.id, homepage: message.homepage)
        case .reset: AgentMessage(type: .resetDone, id: message.id)
        default: nil
        }
        return reply.map { [String(decoding: $0.encodedLine().dropLast(), as: UTF8.self)] } ?? []
    }

    /// Sends raw text (a newline is added).
    func send(_ line: String) {
        lock.lock()
        let fd = connection
        lock.unlock()
        guard fd >= 0 else { return }
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    func send(_ message: AgentMessage) { send(String(decoding: message.encodedLine().dropLast(), as: UTF8.self)) }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        lock.lock()
        if connection >= 0 { shutdown(connection, Int32(SHUT_RDWR)) }
        lock.unlock()
    }

    private func serve() {
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return }
        lock.lock()
        connection = fd
        lock.unlock()
        var splitter = AgentLineSplitter()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            for item in splitter.append(buffer[0..<n]) {
                guard case .line(let line) = item, !line.isEmpty, let message = try? AgentMessage.decode(line: line) else { continue }
                for reply in answer(message) { send(reply) }
            }
        }
        Glibc.close(fd)
    }
}
