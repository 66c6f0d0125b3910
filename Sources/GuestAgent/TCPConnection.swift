// A blocking-style TCP connection to 127.0.0.1 where every operation has a deadline: the
// DevTools endpoint belongs to a big program that may hang, and the agent must not hang with it.
import Glibc

struct NetworkError: Error, CustomStringConvertible {
    let description: String
}

final class TCPConnection: @unchecked Sendable {
    private(set) var fd: Int32

    /// Connects to 127.0.0.1:`port` (loopback only: DevTools must never be reachable from outside).
    init(loopbackPort port: UInt16, deadline: Deadline) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw NetworkError(description: "socket: \(errnoText())") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            guard errno == EINPROGRESS else {
                let why = errnoText()
                Glibc.close(fd)
                throw NetworkError(description: "connect 127.0.0.1:\(port): \(why)")
            }
            do {
                try waitFor(Int16(POLLOUT), deadline: deadline, what: "connect")
            } catch {
                Glibc.close(fd)
                throw error
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                Glibc.close(fd)
                throw NetworkError(description: "connect 127.0.0.1:\(port): \(String(cString: strerror(err)))")
            }
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
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

    /// Everything up to EOF, at most `limit` bytes.
    func readToEnd(limit: Int, deadline: Deadline) throws -> [UInt8] {
        while true {
            guard available <= limit else { throw NetworkError(description: "body longer than \(limit) bytes") }
            let more = try connection.read(max: 64 * 1024, deadline: deadline)
            if more.isEmpty { break }
            buffer.append(contentsOf: more)
        }
        defer { start = buffer.count }
        return Array(buffer[start...])
    }
}
