// After every top-level page load, in any tab: a PNG screenshot and an MHTML snapshot, taken
// through the tab's DevTools session on the capture thread and handed to the PageSender, so the port keeps answering
// requests meanwhile.
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
    private let sender: PageSender

    init(sender: PageSender) { self.sender = sender }

    func pageLoaded(url: String, tab: Int, time: Int64, session: CDPPage) {
        // Read now: a capture of a page loaded before a reset must not be delivered after it.
        let generation = sender.currentGeneration
        let queued = queue.submit { [self] in capture(url: url, tab: tab, time: time, session: session, generation: generation) }
        if !queued { log("capture queue full: no capture for \(url.prefix(200))") }
    }

    private func capture(url: String, tab: Int, time: Int64, session: CDPPage, generation: UInt64) {
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
        sender.send(url: url, title: title, tab: tab, time: time, screenshot: screenshot, mhtml: mhtml,
                    generation: generation, startedAt: started)
    }

    /// One capture, or no bytes (logged) when it fails.
    private func part(_ part: AgentMessage.BlobPart, url: String, _ take: () throws -> [UInt8]) -> [UInt8] {
        do {
            return try take()
        } catch {
            log("\(part.rawValue) of \(url.prefix(200)) failed: \(error); sent as 0 bytes")
            return []
        }
    }
}

struct DataResult: Decodable { var data: String }

struct NavigationHistory: Decodable {
    struct Entry: Decodable { var url: String; var title: String? }
    var currentIndex: Int
    var entries: [Entry]
    var current: Entry? { entries.indices.contains(currentIndex) ? entries[currentIndex] : nil }
}
