// A tiny HTTP/1.0-style server for the browser tests: fixed pages on 127.0.0.1, one request per
// connection, each on its own thread. It records every request, and can hold the answer for
// some paths until `release()` (a server that does not answer), noting when the client gives up.
import Foundation
import Glibc

final class TestHTTPServer: @unchecked Sendable {
    /// One request as received: its target (path and query) and headers (names lower-cased).
    struct Request {
        var target: String
        var headers: [String: String]
        var path: String { target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target }
    }

    let port: UInt16
    private let fd: Int32
    private let pages: [String: String]
    /// Paths (without query) whose answer waits for `release()`.
    private let held: Set<String>
    private let condition = NSCondition()
    private var released = false
    private var recorded: [Request] = []
    private var heldClosed = 0

    init(pages: [String: String], held: Set<String> = []) throws {
        self.pages = pages
        self.held = held
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { ptr in
                bind(fd, ptr, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, ptr, &len) == 0
            }
        }
        guard bound else { throw TestFailure("test HTTP server: \(String(cString: strerror(errno)))") }
        self.fd = fd
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread { [self] in serve() }
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() {
        release()
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    /// Held requests get their answer now (and later ones right away).
    func release() {
        condition.lock()
        released = true
        condition.broadcast()
        condition.unlock()
    }

    var requests: [Request] {
        condition.lock()
        defer { condition.unlock() }
        return recorded
    }

    /// Held requests whose client closed the connection before the answer.
    var heldClosedByClient: Int {
        condition.lock()
        defer { condition.unlock() }
        return heldClosed
    }

    /// Waits until `ready()` holds (checked every 50 ms); false after `timeout`.
    func wait(timeout: TimeInterval, until ready: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !ready() {
            guard Date() < deadline else { return false }
            usleep(50_000)
        }
        return true
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            Thread.detachNewThread { [self] in answer(client) }
        }
    }

    private func answer(_ client: Int32) {
        defer { close(client) }
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !request.suffix(4).elementsEqual("\r\n\r\n".utf8), request.count < 65536 {
            let n = read(client, &chunk, chunk.count)
            guard n > 0 else { return }
            request += chunk[0..<n]
        }
        let lines = String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n")
        let target = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let recordedRequest = Request(target: target, headers: headers)
        condition.lock()
        recorded.append(recordedRequest)
        condition.unlock()
        let path = recordedRequest.path
        if held.contains(path) && !waitForRelease(client) { return }
        let body = pages[path]
        let head = body == nil ? "HTTP/1.1 404 Not Found" : "HTTP/1.1 200 OK"
        let bytes = Array((body ?? "not found").utf8)
        let response = Array("\(head)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n".utf8) + bytes
        // MSG_NOSIGNAL: a client that went away must not kill the test process with SIGPIPE.
        _ = response.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// True once released; false when the client closed the connection first.
    private func waitForRelease(_ client: Int32) -> Bool {
        while true {
            condition.lock()
            let go = released || condition.wait(until: Date().addingTimeInterval(0.05)) && released
            condition.unlock()
            if go { return true }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) > 0 {
                var byte: UInt8 = 0
                if recv(client, &byte, 1, Int32(MSG_PEEK)) <= 0 {
                    condition.lock()
                    heldClosed += 1
                    condition.unlock()
                    return false
                }
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
