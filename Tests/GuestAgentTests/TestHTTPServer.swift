// A tiny HTTP/1.0-style server for the browser tests: two pages on 127.0.0.1, one request per
// connection, on its own thread.
import Foundation
import Glibc

final class TestHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let pages: [String: String]

    init(pages: [String: String]) throws {
        self.pages = pages
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

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

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
        let path = String(decoding: request, as: UTF8.self).split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let body = pages[path]
        let head = body == nil ? "HTTP/1.1 404 Not Found" : "HTTP/1.1 200 OK"
        let bytes = Array((body ?? "not found").utf8)
        let response = Array("\(head)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n".utf8) + bytes
        _ = response.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
