// Minimal HTTP/1.1 GET: DevTools' discovery endpoints (/json/version, /json/list), the
// response-header part of the WebSocket handshake, and the file browser's page loads. One
// request per connection, no redirects followed, bounded and with deadlines throughout.
struct HTTPResponse {
    var status: Int
    /// Header names lower-cased.
    var headers: [String: String]
    var body: [UInt8]
    /// The body was longer than the caller's limit and ends there.
    var truncated = false
}

enum HTTPClient {
    static let maxBody = 1 << 20

    /// GET from 127.0.0.1:`port` (DevTools); a body over `maxBody` is an error.
    static func get(port: UInt16, path: String, timeout: Double = 5) throws -> HTTPResponse {
        try get(.loopback(port), path: path, timeout: timeout)
    }

    /// GET `path` (with its query) from `endpoint`, all of it within `timeout` seconds. A body
    /// over `maxBody` bytes is an error, or with `truncate` is cut there (`truncated`).
    /// `headers` are sent as given (names and values must not contain CR or LF).
    static func get(_ endpoint: IPv4Endpoint, path: String, headers: [(String, String)] = [], timeout: Double,
                    maxBody: Int = maxBody, truncate: Bool = false, cancellation: Cancellation? = nil) throws -> HTTPResponse {
        let deadline = Deadline(seconds: timeout)
        let connection = try TCPConnection(to: endpoint, deadline: deadline, cancellation: cancellation)
        defer { connection.close() }
        // Host without the default port, as browsers send it.
        let host = endpoint.port == 80 ? endpoint.addressText : endpoint.description
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "Connection: close\r\n\r\n"
        try connection.write(Array(request.utf8), deadline: deadline)
        let reader = ByteReader(connection)
        var response = try readHead(reader, deadline: deadline)
        let tooLong = NetworkError(description: "body longer than \(maxBody) bytes")
        if let length = response.headers["content-length"] {
            guard let n = Int(length), n >= 0 else { throw NetworkError(description: "bad Content-Length \(length)") }
            guard n <= maxBody || truncate else { throw tooLong }
            response.body = try reader.readExactly(min(n, maxBody), deadline: deadline)
            response.truncated = n > maxBody
        } else if response.headers["transfer-encoding"]?.lowercased() == "chunked" {
            (response.body, response.truncated) = try readChunked(reader, limit: maxBody, deadline: deadline)
            guard !response.truncated || truncate else { throw tooLong }
        } else {
            (response.body, response.truncated) = try reader.readUpToEnd(max: maxBody, deadline: deadline)
            guard !response.truncated || truncate else { throw tooLong }
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

    /// The chunks' data up to `limit` bytes; `truncated` when it stopped there.
    private static func readChunked(_ reader: ByteReader, limit: Int, deadline: Deadline) throws -> ([UInt8], truncated: Bool) {
        var body: [UInt8] = []
        while true {
            let sizeLine = try reader.readLine(limit: 1024, deadline: deadline)
            guard let size = Int(sizeLine.split(separator: ";").first?.trimmingSpaces() ?? "", radix: 16), size >= 0 else {
                throw NetworkError(description: "bad chunk size \(sizeLine.prefix(40))")
            }
            if size == 0 {
                // Trailers end with an empty line.
                while !(try reader.readLine(limit: 8192, deadline: deadline)).isEmpty {}
                return (body, false)
            }
            let take = min(size, limit - body.count)
            body += try reader.readExactly(take, deadline: deadline)
            if take < size { return (body, true) }
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
