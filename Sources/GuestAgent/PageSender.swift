// Sends one captured page to the host, the same way for every browser: a `page` announcement
// (numbered, with the sizes that follow), then the screenshot and then the MHTML as `blob`
// chunks, all through the Outbox's bulk queue under the generation the caller read when the
// page started loading, so a capture of an older session or host connection is abandoned.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

final class PageSender: @unchecked Sendable {
    private let outbox: Outbox
    private let lock = Lock()
    /// Page numbers count up for the whole agent run (resets and restarts included).
    private var counter: UInt64 = 0
    /// Bytes of decoded data per blob chunk: agentMaxBlobChunkBase64 is a multiple of 4.
    static let chunkBytes = agentMaxBlobChunkBase64 / 4 * 3

    init(outbox: Outbox) { self.outbox = outbox }

    /// What a capture must be sent under: read it when the page starts loading (Chromium: at the
    /// load event; file browser: at configure), before anything that can block.
    var currentGeneration: UInt64 { outbox.currentGeneration }

    /// Numbers and sends one page; a part larger than the host accepts is sent as 0 bytes.
    /// False (logged) when the host connection changed or the session was reset since
    /// `generation`, or the host stopped reading: the rest is abandoned.
    @discardableResult
    func send(url: String, title: String, tab: Int? = nil, time: Int64, screenshot: [UInt8], mhtml: [UInt8],
              generation: UInt64, startedAt started: UInt64 = Deadline.now) -> Bool {
        let screenshot = Self.fitted(.screenshot, screenshot, url: url)
        let mhtml = Self.fitted(.mhtml, mhtml, url: url)
        let number = lock.withLock { counter += 1; return counter }
        let deadline = Deadline(seconds: 120)
        let announce = AgentMessage(
            type: .page, url: String(url.utf8.count <= 8192 ? url : "about:invalid"),
            title: truncated(title, 1024), tab: tab, page: number, time: time,
            screenshotBytes: screenshot.count, mhtmlBytes: mhtml.count)
        guard outbox.sendBulk(announce, generation: generation, deadline: deadline),
              send(.screenshot, screenshot, page: number, generation: generation, deadline: deadline),
              send(.mhtml, mhtml, page: number, generation: generation, deadline: deadline) else {
            log("page \(number) \(url.prefix(200)): host went away, the session was reset or the host stopped reading; capture abandoned")
            return false
        }
        log("page \(number) \(url.prefix(200)): screenshot \(screenshot.count) B, mhtml \(mhtml.count) B, \((Deadline.now - started) / 1_000_000) ms")
        return true
    }

    private static func fitted(_ part: AgentMessage.BlobPart, _ bytes: [UInt8], url: String) -> [UInt8] {
        guard bytes.count <= part.maxBytes else {
            log("\(part.rawValue) of \(url.prefix(200)) is \(bytes.count) bytes, over the \(part.maxBytes)-byte limit: sent as 0 bytes")
            return []
        }
        return bytes
    }

    /// Chunks of at most agentMaxBlobChunkBase64 base64 characters; a 0-byte part is one empty
    /// final chunk.
    private func send(_ part: AgentMessage.BlobPart, _ bytes: [UInt8], page: UInt64, generation: UInt64, deadline: Deadline) -> Bool {
        var offset = 0
        repeat {
            let end = min(offset + Self.chunkBytes, bytes.count)
            let chunk = AgentMessage(
                type: .blob, page: page, part: part, offset: offset,
                data: Data(bytes[offset..<end]).base64EncodedString(), final: end == bytes.count)
            guard outbox.sendBulk(chunk, generation: generation, deadline: deadline) else { return false }
            offset = end
        } while offset < bytes.count
        return true
    }
}

/// At most `maxBytes` of UTF-8, cut between characters.
func truncated(_ text: String, _ maxBytes: Int) -> String {
    var out = ""
    for ch in text {
        guard out.utf8.count + ch.utf8.count <= maxBytes else { break }
        out.append(ch)
    }
    return out
}
