// Minimal HTTP/1.1 GET for DevTools' discovery endpoints (/json/version, /json/list) and the
// response-header part of the WebSocket handshake. Bounded and with deadlines throughout.
struct HTTPResponse {
    var status: Int
    /// Header names lower-cased.
    var headers: [String: String]
    var body: [UInt8]
}

enum HTTPClient {
    static let maxBody = 1 << 20

    static func get(port: UInt16, path: String, timeout: Double = 5) throws -> HTTPResponse {
        let deadline = Deadline(seconds: timeout)
        let connection = try TCPConnection(loopbackPort: port, deadline: deadline)
        defer { connection.close() }
        try connection.write(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8), deadline: deadline)
        let reader = ByteReader(connection)
        var response = try readHead(reader, deadline: deadline)
        if let length = response.headers["content-length"] {
            guard let n = Int(length), (0...maxBody).contains(n) else { throw NetworkError(description: "bad Content-Length \(length)") }
            response.body = try reader.readExactly(n, deadline: deadline)
        } else if response.headers["transfer-encoding"]?.lowercased() == "chunked" {
            response.body = try readChunked(reader, deadline: deadline)
        } else {
            response.body = try reader.readToEnd(limit: maxBody, deadline: deadline)
        }
        return response
    }

    /// Status line and headers (the body is the caller's business).
    static func readHead(_ reader: ByteReader, deadline: Deadline) throws -> HTTPResponse {
        let statusLine = try reader.readLine(limit: 8192, deadline: deadline)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw NetworkError(description: "bad HTTP status line \(statusLine.prefix(100))")
        }
        var headers: [String: String] = [:]
        for _ in 0..<100 {
            let line = try reader.readLine(limit: 8192, deadline: deadline)
            if line.isEmpty { return HTTPResponse(status: status, headers: headers, body: []) }
            guard let colon = line.firstIndex(of: ":") else { throw NetworkError(description: "bad HTTP header line") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            headers[name] = value
        }
        throw NetworkError(description: "more than 100 HTTP headers")
    }

    private static func readChunked(_ reader: ByteReader, deadline: Deadline) throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try reader.readLine(limit: 1024, deadline: deadline)
            guard let size = Int(sizeLine.split(separator: ";").first?.trimmingSpaces() ?? "", radix: 16), size >= 0,
                  body.count + size <= maxBody else { throw NetworkError(description: "bad chunk size \(sizeLine.prefix(40))") }
            if size == 0 {
                // Trailers end with an empty line.
                while !(try reader.readLine(limit: 8192, deadline: deadline)).isEmpty {}
                return body
            }
            body += try reader.readExactly(size, deadline: deadline)
            _ = try reader.readLine(limit: 2, deadline: deadline)
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
