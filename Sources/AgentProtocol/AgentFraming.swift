#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Largest base64 `data` in one `blob` message: 48 KiB of base64 (36 KiB of bytes) leaves the
/// rest of the line for the other fields.
public let agentMaxBlobChunkBase64 = 48 * 1024

public enum AgentProtocolError: Error, Equatable, CustomStringConvertible {
    case lineTooLong(Int)
    case malformed(String)
    case unsupportedVersion(Int)
    case invalid(String)

    public var description: String {
        switch self {
        case .lineTooLong(let n): return "line of \(n) bytes exceeds the \(agentMaxLineBytes)-byte limit"
        case .malformed(let why): return "malformed message: \(why)"
        case .unsupportedVersion(let v): return "unsupported protocol version \(v) (this side speaks \(agentProtocolVersion))"
        case .invalid(let why): return "invalid message: \(why)"
        }
    }
}

extension AgentMessage {
    /// One line of JSON, newline-terminated.
    public func encodedLine() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a struct of strings and numbers cannot fail.
        var bytes = [UInt8](try! encoder.encode(self))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Decodes and validates one line (without its newline).
    public static func decode(line: some Collection<UInt8>) throws(AgentProtocolError) -> AgentMessage {
        guard line.count <= agentMaxLineBytes else { throw .lineTooLong(line.count) }
        let message: AgentMessage
        do {
            message = try JSONDecoder().decode(AgentMessage.self, from: Data(line))
        } catch {
            throw .malformed("\(error)")
        }
        guard message.v == agentProtocolVersion else { throw .unsupportedVersion(message.v) }
        try message.validate()
        return message
    }

    /// Checks the fields each kind needs and the bounds of every string.
    public func validate() throws(AgentProtocolError) {
        func bounded(_ s: String?, _ name: String, max: Int) throws(AgentProtocolError) {
            if let s, s.utf8.count > max { throw .invalid("\(name) longer than \(max) bytes") }
        }
        try bounded(agentVersion, "agentVersion", max: 64)
        try bounded(ip, "ip", max: 64)
        try bounded(homepage, "homepage", max: 8192)
        try bounded(message, "message", max: 4096)
        try bounded(url, "url", max: 8192)
        try bounded(title, "title", max: 1024)
        try bounded(loadError, "loadError", max: 1024)
        if let tab, !(1...1_000_000).contains(tab) { throw .invalid("tab must be 1...1000000") }
        try bounded(data, "data", max: agentMaxBlobChunkBase64)
        if let history {
            guard history.count <= 1000 else { throw .invalid("history longer than 1000 entries") }
            for entry in history { try bounded(entry, "history entry", max: 8192) }
        }
        if let expires = cookies?.compactMap(\.expires).first(where: { !$0.isFinite || $0 < 0 }) {
            throw .invalid("cookie expiry \(expires) is not a time")
        }
        if let cookies {
            guard cookies.count <= 64 else { throw .invalid("more than 64 cookies") }
            // Together they must fit in one line with room for the rest of the message.
            let total = cookies.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + $1.domain.utf8.count + ($1.path?.utf8.count ?? 0) }
            guard total <= agentMaxLineBytes / 2 else { throw .invalid("cookies total more than \(agentMaxLineBytes / 2) bytes") }
            for cookie in cookies {
                guard !cookie.name.isEmpty else { throw .invalid("cookie without a name") }
                // RFC 6265 allows no control characters, quotes or backslashes in cookies; this
                // also keeps JSON escaping from growing a message past the line limit.
                for field in [cookie.name, cookie.value, cookie.domain, cookie.path ?? ""]
                where field.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "\"" || $0 == "\\" || $0.value == 0x7f }) {
                    throw .invalid("cookie fields must not contain control characters, quotes or backslashes")
                }
                try bounded(cookie.name, "cookie name", max: 256)
                try bounded(cookie.value, "cookie value", max: 4096)
                try bounded(cookie.domain, "cookie domain", max: 256)
                try bounded(cookie.path, "cookie path", max: 1024)
            }
        }
        switch type {
        case .configure:
            guard id != nil else { throw .invalid("configure needs an id") }
            guard let homepage, !homepage.isEmpty else { throw .invalid("configure needs a homepage") }
        case .configured, .resetDone, .state, .pong, .reset, .status, .ping, .navigated:
            guard id != nil else { throw .invalid("\(type.rawValue) needs an id") }
        case .navigate:
            guard id != nil else { throw .invalid("navigate needs an id") }
            guard let url, !url.isEmpty else { throw .invalid("navigate needs a url") }
        case .page:
            guard page != nil, let url, !url.isEmpty, time != nil else { throw .invalid("page needs page, url and time") }
            for part in BlobPart.allCases {
                let size = (part == .screenshot ? screenshotBytes : mhtmlBytes) ?? -1
                guard (0...part.maxBytes).contains(size) else {
                    throw .invalid("page \(part.rawValue)Bytes must be 0...\(part.maxBytes)")
                }
            }
        case .blob:
            guard page != nil, part != nil, let offset, offset >= 0, data != nil, final != nil else {
                throw .invalid("blob needs page, part, offset >= 0, data and final")
            }
        case .hello, .error, .browserCrashed:
            break
        }
    }
}

/// Splits a byte stream into lines, enforcing `agentMaxLineBytes`. An over-long line is
/// skipped up to its newline and reported once as `.lineTooLong`.
public struct AgentLineSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var discarding = false
    private var discarded = 0

    public init() {}

    public enum Item: Sendable, Equatable {
        case line([UInt8])
        case tooLong(Int)
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if discarding {
                    items.append(.tooLong(discarded))
                    discarding = false
                    discarded = 0
                } else {
                    items.append(.line(buffer))
                }
                buffer.removeAll(keepingCapacity: true)
            } else if discarding {
                discarded += 1
            } else if buffer.count == agentMaxLineBytes {
                discarding = true
                discarded = buffer.count + 1
                buffer.removeAll(keepingCapacity: false)
            } else {
                buffer.append(byte)
            }
        }
        return items
    }
}
