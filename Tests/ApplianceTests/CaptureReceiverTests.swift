import AgentProtocol
import Foundation
import Logging
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// Reassembly of a guest's page captures from chunks, on real files.
@Suite struct CaptureReceiverTests {
    let directory: String
    let blobs: BlobStore
    let receiver: CaptureReceiver

    init() throws {
        directory = try makeTemporaryDirectory("captures")
        blobs = try BlobStore(root: directory + "/blobs")
        receiver = CaptureReceiver(blobs: blobs, logger: Logger(label: "test"))
    }

    static func page(_ n: UInt64, screenshot: Int, mhtml: Int) -> AgentMessage {
        AgentMessage(type: .page, url: "http://a.test/\(n)", title: "Page \(n)", page: n, time: 1_700_000_000_000,
                     screenshotBytes: screenshot, mhtmlBytes: mhtml)
    }

    static func chunk(_ n: UInt64, _ part: AgentMessage.BlobPart, _ offset: Int, _ bytes: [UInt8], final: Bool) -> AgentMessage {
        AgentMessage(type: .blob, page: n, part: part, offset: offset, data: Data(bytes).base64EncodedString(), final: final)
    }

    @Test func chunksAreReassembledAndStoredByHash() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let png = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let mhtml = Array("MIME-Version: 1.0\r\n\r\nhello".utf8)
        #expect(try await receiver.receive(vm: 1, session: 4, Self.page(7, screenshot: png.count, mhtml: mhtml.count)) == nil)
        var offset = 0
        while offset < png.count {
            let end = min(offset + 36 * 1024, png.count)
            #expect(try await receiver.receive(vm: 1, session: 4, Self.chunk(7, .screenshot, offset, Array(png[offset..<end]), final: end == png.count)) == nil)
            offset = end
        }
        let page = try #require(try await receiver.receive(vm: 1, session: 4, Self.chunk(7, .mhtml, 0, mhtml, final: true)))
        #expect(page.vmSession == 4 && page.url == "http://a.test/7" && page.screenshotBytes == png.count)
        #expect(FileManager.default.contents(atPath: blobs.path(hash: page.screenshotHash!)) == Data(png))
        #expect(FileManager.default.contents(atPath: blobs.path(hash: page.mhtmlHash!)) == Data(mhtml))
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.temporaryDirectory).isEmpty)
    }

    @Test func rulesBreakingChunksAreRejectedAndDropThePage() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func rejected(_ message: AgentMessage) async -> String? {
            do { _ = try await receiver.receive(vm: 2, session: 0, message); return nil } catch { return error.description }
        }
        #expect(await rejected(Self.chunk(1, .screenshot, 0, [1], final: true))?.contains("never announced") == true)

        _ = try await receiver.receive(vm: 2, session: 0, Self.page(1, screenshot: 4, mhtml: 1))
        #expect(await rejected(Self.chunk(1, .mhtml, 0, [1], final: true))?.contains("out of order") == true)
        // The page is gone: its next chunk has nothing to belong to.
        #expect(await rejected(Self.chunk(1, .screenshot, 0, [1, 2, 3, 4], final: true))?.contains("never announced") == true)

        _ = try await receiver.receive(vm: 2, session: 0, Self.page(2, screenshot: 4, mhtml: 1))
        #expect(await rejected(Self.chunk(2, .screenshot, 2, [1, 2], final: false))?.contains("offset") == true)

        _ = try await receiver.receive(vm: 2, session: 0, Self.page(3, screenshot: 4, mhtml: 1))
        #expect(await rejected(Self.chunk(3, .screenshot, 0, [1, 2, 3, 4, 5], final: false))?.contains("exceeds") == true)

        _ = try await receiver.receive(vm: 2, session: 0, Self.page(4, screenshot: 4, mhtml: 1))
        #expect(await rejected(Self.chunk(4, .screenshot, 0, [1, 2], final: true))?.contains("ended at 2 of 4") == true)

        _ = try await receiver.receive(vm: 2, session: 0, Self.page(5, screenshot: 4, mhtml: 1))
        var bad = Self.chunk(5, .screenshot, 0, [1], final: false)
        bad.data = "***not base64***"
        #expect(await rejected(bad)?.contains("base64") == true)

        #expect(await rejected(Self.chunk(9, .screenshot, 0, [1], final: false))?.contains("never announced") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.temporaryDirectory).isEmpty, "dropped pages leave no files")
    }
}
