// After every top-level page load: a PNG screenshot and an MHTML snapshot, announced with one
// `page` message and streamed as `blob` chunks. Runs on its own thread and sends through the
// Outbox's bulk queue, so the port keeps answering requests meanwhile.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

final class PageCapturer: @unchecked Sendable {
    /// Captures waiting beyond this are dropped (a page that navigates in a loop must not queue
    /// captures without bound).
    private let queue = SerialQueue(name: "captures", limit: 4)
    private let outbox: Outbox
    private let lock = Lock()
    /// Page numbers count up for the whole agent run (resets and restarts included).
    private var counter: UInt64 = 0
    /// Bytes of decoded data per blob chunk: agentMaxBlobChunkBase64 is a multiple of 4.
    static let chunkBytes = agentMaxBlobChunkBase64 / 4 * 3

    init(outbox: Outbox) { self.outbox = outbox }

    func pageLoaded(url: String, time: Int64, session: CDPClient) {
        let queued = queue.submit { [self] in capture(url: url, time: time, session: session) }
        if !queued { log("capture queue full: no capture for \(url.prefix(200))") }
    }

    private func capture(url: String, time: Int64, session: CDPClient) {
        let started = Deadline.now
        let title = (try? session.call("Page.getNavigationHistory", timeout: 10, as: NavigationHistory.self))?.current?.title ?? ""
        let screenshot = part(.screenshot, url: url) {
            let shot = try session.call("Page.captureScreenshot", ["format": "png"], timeout: 30, as: DataResult.self)
            guard let bytes = Data(base64Encoded: shot.data) else { throw CDPError(description: "screenshot is not base64") }
            return [UInt8](bytes)
        }
        let mhtml = part(.mhtml, url: url) {
            Array(try session.call("Page.captureSnapshot", ["format": "mhtml"], timeout: 60, as: DataResult.self).data.utf8)
        }
        let number = lock.withLock { counter += 1; return counter }
        let generation = outbox.currentGeneration
        let deadline = Deadline(seconds: 120)
        let announce = AgentMessage(
            type: .page, url: String(url.utf8.count <= 8192 ? url : "about:invalid"),
            title: truncated(title, 1024), page: number, time: time,
            screenshotBytes: screenshot.count, mhtmlBytes: mhtml.count)
        guard outbox.sendBulk(announce, generation: generation, deadline: deadline),
              send(.screenshot, screenshot, page: number, generation: generation, deadline: deadline),
              send(.mhtml, mhtml, page: number, generation: generation, deadline: deadline) else {
            log("page \(number): host went away or stopped reading; capture abandoned")
            return
        }
        log("page \(number) \(url.prefix(200)): screenshot \(screenshot.count) B, mhtml \(mhtml.count) B, \((Deadline.now - started) / 1_000_000) ms")
    }

    /// One capture, or no bytes (logged) when it fails or is larger than the host accepts.
    private func part(_ part: AgentMessage.BlobPart, url: String, _ take: () throws -> [UInt8]) -> [UInt8] {
        do {
            let bytes = try take()
            guard bytes.count <= part.maxBytes else {
                log("\(part.rawValue) of \(url.prefix(200)) is \(bytes.count) bytes, over the \(part.maxBytes)-byte limit: sent as 0 bytes")
                return []
            }
            return bytes
        } catch {
            log("\(part.rawValue) of \(url.prefix(200)) failed: \(error); sent as 0 bytes")
            return []
        }
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

struct DataResult: Decodable { var data: String }

struct NavigationHistory: Decodable {
    struct Entry: Decodable { var url: String; var title: String? }
    var currentIndex: Int
    var entries: [Entry]
    var current: Entry? { entries.indices.contains(currentIndex) ? entries[currentIndex] : nil }
}

func truncated(_ text: String, _ maxBytes: Int) -> String {
    var out = ""
    for ch in text {
        guard out.utf8.count + ch.utf8.count <= maxBytes else { break }
        out.append(ch)
    }
    return out
}
