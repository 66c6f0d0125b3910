import AgentProtocol
import Foundation
import Logging

/// Reassembles the captures a guest sends for each page it visits: a `page` announcement, then
/// `blob` chunks for the screenshot and then the MHTML. Everything is checked against what was
/// announced (order, offsets, sizes, base64); a guest that breaks the rules loses that page and
/// the message is rejected with a reason. Chunks go straight to a temporary file, so memory
/// stays bounded whatever a guest sends.
package actor CaptureReceiver {
    package let blobs: BlobStore
    private let logger: Logger
    private var inFlight: [Int64: PendingPage] = [:]

    package init(blobs: BlobStore, logger: Logger) {
        self.blobs = blobs
        self.logger = logger
    }

    package struct Rejection: Error, CustomStringConvertible {
        package let description: String

        package init(description: String) {
            self.description = description
        }
    }

    /// A page being received: its announcement and the capture part being written.
    private struct PendingPage {
        package let announcement: AgentMessage
        package let session: Int64
        package var part: AgentMessage.BlobPart = .screenshot
        package var written = 0
        package var file: FileHandle?
        package var filePath: String?
        package var hashes: [AgentMessage.BlobPart: String] = [:]

        package init(announcement: AgentMessage, session: Int64, part: AgentMessage.BlobPart = .screenshot, written: Int = 0, file: FileHandle? = nil, filePath: String? = nil, hashes: [AgentMessage.BlobPart: String] = [:]) {
            self.announcement = announcement
            self.session = session
            self.part = part
            self.written = written
            self.file = file
            self.filePath = filePath
            self.hashes = hashes
        }

        package func expected(_ part: AgentMessage.BlobPart) -> Int {
            (part == .screenshot ? announcement.screenshotBytes : announcement.mhtmlBytes) ?? 0
        }
    }

    /// Takes one `page` or `blob` message of a VM. Returns the stored page when it completes.
    package func receive(vm: Int64, session: Int64, _ message: AgentMessage) throws(Rejection) -> PageRecord? {
        switch message.type {
        case .page:
            if let dropped = inFlight.removeValue(forKey: vm) {
                discard(dropped)
                logger.warning("page superseded before its captures arrived", metadata: ["vm": "\(vm)", "page": "\(dropped.announcement.page ?? 0)"])
            }
            inFlight[vm] = PendingPage(announcement: message, session: session)
            return nil
        case .blob:
            return try receiveChunk(vm: vm, message)
        default:
            throw Rejection(description: "\(message.type.rawValue) is not a capture message")
        }
    }

    /// Forgets a VM's half-received page (its VM was reset or destroyed).
    package func drop(vm: Int64) {
        if let pending = inFlight.removeValue(forKey: vm) { discard(pending) }
    }

    private func receiveChunk(vm: Int64, _ message: AgentMessage) throws(Rejection) -> PageRecord? {
        guard var pending = inFlight[vm] else { throw Rejection(description: "blob for page \(message.page ?? 0) that was never announced") }
        func reject(_ why: String) -> Rejection {
            inFlight.removeValue(forKey: vm)
            discard(pending)
            return Rejection(description: "\(why); page \(pending.announcement.page ?? 0) dropped")
        }
        guard message.page == pending.announcement.page else { throw reject("blob for page \(message.page ?? 0) while page \(pending.announcement.page ?? 0) is open") }
        guard message.part == pending.part else { throw reject("blob part \(message.part?.rawValue ?? "?") out of order (expected \(pending.part.rawValue))") }
        guard message.offset == pending.written else { throw reject("blob offset \(message.offset ?? -1) out of order (expected \(pending.written))") }
        guard let bytes = Data(base64Encoded: message.data ?? "") else { throw reject("blob data is not base64") }
        let expected = pending.expected(pending.part)
        guard pending.written + bytes.count <= expected else { throw reject("\(pending.part.rawValue) exceeds its announced \(expected) bytes") }
        do {
            if pending.file == nil {
                let path = blobs.temporaryDirectory + "/\(vm)-\(UUID().uuidString)"
                FileManager.default.createFile(atPath: path, contents: nil)
                pending.file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                pending.filePath = path
            }
            try pending.file?.write(contentsOf: bytes)
        } catch {
            throw reject("cannot write the capture: \(error)")
        }
        pending.written += bytes.count
        inFlight[vm] = pending
        guard message.final == true else { return nil }
        guard pending.written == expected else { throw reject("\(pending.part.rawValue) ended at \(pending.written) of \(expected) announced bytes") }

        // The part is complete: store it by hash, then move on to the next part or finish.
        do {
            try pending.file?.close()
            if let path = pending.filePath, expected > 0 {
                pending.hashes[pending.part] = try blobs.adopt(temporaryFile: path)
            } else if let path = pending.filePath {
                try? FileManager.default.removeItem(atPath: path)
            }
        } catch {
            throw reject("cannot store the capture: \(error)")
        }
        pending.file = nil
        pending.filePath = nil
        pending.written = 0
        if pending.part == .screenshot {
            pending.part = .mhtml
            inFlight[vm] = pending
            return nil
        }
        inFlight.removeValue(forKey: vm)
        let a = pending.announcement
        var page = PageRecord(
            id: nil, vmId: vm, vmSession: pending.session, agentPage: Int64(clamping: a.page ?? 0),
            url: a.url ?? "", title: a.title ?? "", at: Date(), guestTime: a.time ?? 0,
            screenshotHash: pending.hashes[.screenshot], screenshotBytes: a.screenshotBytes ?? 0,
            mhtmlHash: pending.hashes[.mhtml], mhtmlBytes: a.mhtmlBytes ?? 0)
        page.tab = a.tab
        return page
    }

    private func discard(_ pending: PendingPage) {
        try? pending.file?.close()
        if let path = pending.filePath { try? FileManager.default.removeItem(atPath: path) }
    }
}
