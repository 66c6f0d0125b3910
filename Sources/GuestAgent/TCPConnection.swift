// A blocking-style TCP connection to an IPv4 address where every operation has a deadline: the
// DevTools endpoint belongs to a big program that may hang, and a web server the file browser
// loads a page from may never answer; the agent must not hang with them.
import Glibc

struct NetworkError: Error, CustomStringConvertible {
    let description: String
}

/// An IPv4 address and a TCP port. No name resolution: the agent only ever connects to
/// 127.0.0.1 (DevTools) or to an IPv4 literal taken from a URL.
struct IPv4Endpoint: Equatable, CustomStringConvertible, Sendable {
    /// Host byte order.
    var address: UInt32
    var port: UInt16

    static func loopback(_ port: UInt16) -> IPv4Endpoint { IPv4Endpoint(address: 0x7f00_0001, port: port) }

    /// Strict dotted decimal, as URLs write IPv4 hosts: four parts 0-255 without leading zeros
    /// (no octal, hex or shortened forms, which mean other addresses in some parsers).
    static func parseAddress(_ text: some StringProtocol) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var address: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  part == "0" || !part.hasPrefix("0"), let byte = UInt8(part) else { return nil }
            address = address << 8 | UInt32(byte)
        }
        return address
    }

    var addressText: String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }

    var description: String { "\(addressText):\(port)" }
}

/// Lets another thread abort connections in progress: shuts down every connection made with it
/// (a blocked connect, read or write returns at once) and refuses new ones once cancelled.
final class Cancellation: @unchecked Sendable {
    private let lock = Lock()
    private var cancelled = false
    private var connections: [ObjectIdentifier: TCPConnection] = [:]

    var isCancelled: Bool { lock.withLock { cancelled } }

    func cancel() {
        lock.withLock {
            cancelled = true
            // Under the lock: a connection detaches (under it too) before it closes its fd, so
            // this never shuts down an fd number that was closed and reused.
            for connection in connections.values { connection.shutdownBoth() }
        }
    }

    fileprivate func attach(_ connection: TCPConnection) throws {
        try lock.withLock {
            guard !cancelled else { throw NetworkError(description: "cancelled") }
            connections[ObjectIdentifier(connection)] = connection
        }
    }

    fileprivate func detach(_ connection: TCPConnection) {
        lock.withLock { _ = connections.removeValue(forKey: ObjectIdentifier(connection)) }
    }
}

final class TCPConnection: @unchecked Sendable {
    private(set) var fd: Int32
    let endpoint: IPv4Endpoint
    private let cancellation: Cancellation?

    /// Connects to 127.0.0.1:`port` (loopback only: DevTools must never be reachable from outside).
    convenience init(loopbackPort port: UInt16, deadline: Deadline) throws {
        try self.init(to: .loopback(port), deadline: deadline)
    }

    /// Connects to `endpoint` within `deadline`; `cancellation` can abort it from another thread
    /// at any point until `close()`.
    init(to endpoint: IPv4Endpoint, deadline: Deadline, cancellation: Cancellation? = nil) throws {
        self.endpoint = endpoint
        self.cancellation = cancellation
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw NetworkError(description: "socket: \(errnoText())") }
        do {
            try cancellation?.attach(self)
            try connect(deadline: deadline)
            // A cancel during the connect may leave it looking successful.
            if cancellation?.isCancelled == true { throw NetworkError(description: "connect \(endpoint): cancelled") }
        } catch {
            close()
            throw error
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    private func connect(deadline: Deadline) throws {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = endpoint.port.bigEndian
        addr.sin_addr.s_addr = endpoint.address.bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc != 0 else { return }
        guard errno == EINPROGRESS else { throw NetworkError(description: "connect \(endpoint): \(errnoText())") }
        try waitFor(Int16(POLLOUT), deadline: deadline, what: "connect \(endpoint)")
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        if err != 0 { throw NetworkError(description: "connect \(endpoint): \(String(cString: strerror(err)))") }
    }

    deinit { close() }

    func close() {
        guard fd >= 0 else { return }
        cancellation?.detach(self)
        Glibc.close(fd)
        fd = -1
    }

    /// Wakes a thread blocked in `read` on this connection (it then sees EOF).
    func shutdownBoth() {
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func waitFor(_ events: Int16, deadline: Deadline, what: String) throws {
        while true {
            var pfd = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&pfd, 1, deadline.remainingMilliseconds)
            if ready > 0 { return }
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { throw NetworkError(description: "\(what): poll: \(errnoText())") }
            throw NetworkError(description: "\(what): timed out")
        }
    }

    func write(_ bytes: [UInt8], deadline: Deadline) throws {
        var offset = 0
        while offset < bytes.count {
            guard fd >= 0 else { throw NetworkError(description: "write: connection closed") }
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { try waitFor(Int16(POLLOUT), deadline: deadline, what: "write"); continue }
            throw NetworkError(description: "write: \(errnoText())")
        }
    }

    /// Up to `max` bytes; empty at EOF.
    func read(max: Int, deadline: Deadline) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            guard fd >= 0 else { return [] }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer[0..<n]) }
            if errno == EINTR { continue }
            if errno == EAGAIN { try waitFor(Int16(POLLIN), deadline: deadline, what: "read"); continue }
            throw NetworkError(description: "read: \(errnoText())")
        }
    }
}

/// Buffered reading on top of a connection: exact byte counts and CRLF lines, all bounded.
final class ByteReader {
    let connection: TCPConnection
    private var buffer: [UInt8] = []
    private var start = 0

    init(_ connection: TCPConnection) { self.connection = connection }

    private var available: Int { buffer.count - start }

    private func fill(deadline: Deadline) throws {
        if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        let more = try connection.read(max: 64 * 1024, deadline: deadline)
        guard !more.isEmpty else { throw NetworkError(description: "connection closed by peer") }
        if start > 64 * 1024 { buffer.removeFirst(start); start = 0 }
        buffer.append(contentsOf: more)
    }

    func readExactly(_ count: Int, deadline: Deadline) throws -> [UInt8] {
        while available < count { try fill(deadline: deadline) }
        defer { start += count }
        return Array(buffer[start..<start + count])
    }

    /// Discards `count` bytes without keeping them (an oversized message).
    func skip(_ count: Int, deadline: Deadline) throws {
        var left = count
        while left > 0 {
            if available == 0 { try fill(deadline: deadline) }
            let n = min(left, available)
            start += n
            left -= n
        }
    }

    /// One line without its CRLF; fails past `limit` bytes.
    func readLine(limit: Int, deadline: Deadline) throws -> String {
        while true {
            if let nl = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = nl
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = nl + 1
                return line
            }
            guard available <= limit else { throw NetworkError(description: "header line longer than \(limit) bytes") }
            try fill(deadline: deadline)
        }
    }

    /// Up to EOF or `max` bytes, whichever comes first; `more` when it stopped at `max` with
    /// bytes left (what is left is not read).
    func readUpToEnd(max: Int, deadline: Deadline) throws -> (bytes: [UInt8], more: Bool) {
        while available <= max {
            let more = try connection.read(max: 64 * 1024, deadline: deadline)
            if more.isEmpty {
                defer { start = buffer.count }
                return (Array(buffer[start...]), false)
            }
            buffer.append(contentsOf: more)
        }
        defer { start += max }
        return (Array(buffer[start..<start + max]), true)
    }
}
