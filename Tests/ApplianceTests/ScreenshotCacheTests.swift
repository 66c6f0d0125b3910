import Foundation
import Libvirt
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// Caching, coalescing and expiry of `ScreenshotCache`, with a counting capture closure that
/// returns real PPM or PNG bytes, and with a real LibvirtClient on the test driver.
@Suite struct ScreenshotCacheTests {
    /// A binary PPM of a gradient.
    static func ppm(width: Int, height: Int) -> Screenshot {
        let pixels = (0..<width * height * 3).map { i in UInt8(truncatingIfNeeded: i % 3 == 2 ? 128 : i / 3) }
        return Screenshot(mimeType: "image/x-portable-pixmap", bytes: Array("P6\n\(width) \(height)\n255\n".utf8) + pixels)
    }

    /// VGA text mode size, which the default thumbnail box scales to 320x178.
    static let vgaText = ppm(width: 720, height: 400)
    /// Small enough that converting it takes no noticeable time next to the TTLs under test.
    static let small = ppm(width: 40, height: 20)

    /// Counts captures per domain; optionally holds each capture until `open()`, or fails.
    actor FakeCapture {
        private(set) var calls: [String: Int] = [:]
        private var gate: [CheckedContinuation<Void, Never>]? = nil
        private var failures = 0
        let result: Screenshot

        init(result: Screenshot = ScreenshotCacheTests.small, gated: Bool = false, failures: Int = 0) {
            self.result = result
            self.gate = gated ? [] : nil
            self.failures = failures
        }

        func capture(_ domain: String) async throws -> Screenshot {
            calls[domain, default: 0] += 1
            if gate != nil { await withCheckedContinuation { gate?.append($0) } }
            if failures > 0 {
                failures -= 1
                throw TestError("capture failed")
            }
            return result
        }

        func open() {
            gate?.forEach { $0.resume() }
            gate = nil
        }

        func count(_ domain: String = "vm") -> Int { calls[domain, default: 0] }
    }

    struct TestError: Error, Equatable {
        let message: String
        init(_ message: String) { self.message = message }
    }

    static func cache(_ fake: FakeCapture, screenshotTTL: Duration = .seconds(60), thumbnailTTL: Duration = .seconds(60), maxEntries: Int = 256) -> ScreenshotCache {
        ScreenshotCache(screenshotTTL: screenshotTTL, thumbnailTTL: thumbnailTTL, maxEntries: maxEntries) { try await fake.capture($0) }
    }

    /// Width and height from a PNG's signature and IHDR.
    static func pngSize(_ png: [UInt8]) -> [Int]? {
        guard png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), png.count >= 24,
              png[12..<16].elementsEqual("IHDR".utf8) else { return nil }
        return [16, 20].map { at in png[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
    }

    @Test func convertsPPMToPNGAndServesRepeatsFromTheCache() async throws {
        let fake = FakeCapture(result: Self.vgaText)
        let cache = Self.cache(fake)
        let png = try await cache.screenshotPNG(domainName: "vm")
        #expect(Self.pngSize(png) == [720, 400])
        #expect(try await cache.screenshotPNG(domainName: "vm") == png)
        let thumbnail = try await cache.thumbnailPNG(domainName: "vm")
        #expect(Self.pngSize(thumbnail) == [320, 178])
        #expect(try await cache.thumbnailPNG(domainName: "vm") == thumbnail)
        #expect(await fake.count() == 1)  // the thumbnail was made from the cached screenshot
    }

    @Test func passesPNGCapturesThrough() async throws {
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: "/usr/share/libvirt/test-screenshot.png")))
        let fake = FakeCapture(result: Screenshot(mimeType: "image/png", bytes: file))
        let cache = Self.cache(fake)
        #expect(try await cache.screenshotPNG(domainName: "vm") == file)
        #expect(Self.pngSize(try await cache.thumbnailPNG(domainName: "vm")) == [320, 238])  // from 1120x832
    }

    @Test func concurrentRequestsShareOneCapture() async throws {
        let fake = FakeCapture(result: Self.vgaText, gated: true)
        let cache = Self.cache(fake)
        let results = Task {
            try await withThrowingTaskGroup(of: [UInt8].self) { group in
                for i in 0..<10 {
                    group.addTask {
                        i.isMultiple(of: 2)
                            ? try await cache.screenshotPNG(domainName: "vm")
                            : try await cache.thumbnailPNG(domainName: "vm")
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        // Open the gate once the first capture is waiting and the others had time to queue up;
        // any that arrive later are served from the cache, so the count stays 1 either way.
        while await fake.count() == 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        await fake.open()
        let pngs = try await results.value
        #expect(pngs.count == 10)
        #expect(Set(pngs.map { Self.pngSize($0) ?? [] }) == [[720, 400], [320, 178]])
        #expect(await fake.count() == 1)
    }

    @Test func capturesAreSeparatePerDomain() async throws {
        let fake = FakeCapture()
        let cache = Self.cache(fake)
        _ = try await cache.screenshotPNG(domainName: "a")
        _ = try await cache.screenshotPNG(domainName: "b")
        _ = try await cache.screenshotPNG(domainName: "a")
        #expect(await fake.count("a") == 1)
        #expect(await fake.count("b") == 1)
    }

    @Test func screenshotsExpireAfterTheirTTL() async throws {
        let fake = FakeCapture()
        let cache = Self.cache(fake, screenshotTTL: .milliseconds(200))
        _ = try await cache.screenshotPNG(domainName: "vm")
        try await Task.sleep(for: .milliseconds(400))
        _ = try await cache.screenshotPNG(domainName: "vm")
        #expect(await fake.count() == 2)
    }

    /// A thumbnail outlives the screenshot it was made from.
    @Test func thumbnailsHaveTheirOwnTTL() async throws {
        let fake = FakeCapture()
        let cache = Self.cache(fake, screenshotTTL: .milliseconds(100), thumbnailTTL: .seconds(60))
        _ = try await cache.thumbnailPNG(domainName: "vm")
        try await Task.sleep(for: .milliseconds(300))
        _ = try await cache.thumbnailPNG(domainName: "vm")
        #expect(await fake.count() == 1)
        _ = try await cache.screenshotPNG(domainName: "vm")
        #expect(await fake.count() == 2)
    }

    /// An expired thumbnail is made from a new capture when the screenshot has expired too.
    @Test func thumbnailsExpireAfterTheirTTL() async throws {
        let fake = FakeCapture()
        let cache = Self.cache(fake, screenshotTTL: .milliseconds(100), thumbnailTTL: .milliseconds(200))
        _ = try await cache.thumbnailPNG(domainName: "vm")
        try await Task.sleep(for: .milliseconds(400))
        _ = try await cache.thumbnailPNG(domainName: "vm")
        #expect(await fake.count() == 2)
    }

    @Test func failuresReachEveryWaiterAndAreNotCached() async throws {
        let fake = FakeCapture(gated: true, failures: 1)
        let cache = Self.cache(fake)
        let first = Task { try await cache.screenshotPNG(domainName: "vm") }
        let second = Task { try await cache.thumbnailPNG(domainName: "vm") }
        while await fake.count() == 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        await fake.open()
        await #expect(throws: TestError("capture failed")) { try await first.value }
        await #expect(throws: TestError("capture failed")) { try await second.value }
        #expect(await fake.count() == 1)
        #expect(Self.pngSize(try await cache.screenshotPNG(domainName: "vm")) == [40, 20])
        #expect(await fake.count() == 2)
    }

    @Test func undecodableCapturesFail() async throws {
        let fake = FakeCapture(result: Screenshot(mimeType: "image/x-portable-pixmap", bytes: Array("P6 720 400 255\n".utf8)))
        let cache = Self.cache(fake)
        await #expect(throws: (any Error).self) { try await cache.screenshotPNG(domainName: "vm") }
    }

    /// With room for two images, a third domain evicts the oldest.
    @Test func cacheSizeIsBounded() async throws {
        let fake = FakeCapture()
        let cache = Self.cache(fake, maxEntries: 2)
        for domain in ["a", "b", "c"] { _ = try await cache.screenshotPNG(domainName: domain) }
        _ = try await cache.screenshotPNG(domainName: "c")
        _ = try await cache.screenshotPNG(domainName: "b")
        #expect(await [fake.count("a"), fake.count("b"), fake.count("c")] == [1, 1, 1])
        _ = try await cache.screenshotPNG(domainName: "a")
        #expect(await fake.count("a") == 2)
    }

    /// End to end through libvirt: the test driver's screenshot (a grayscale PNG) is passed
    /// through, and a thumbnail is made from it.
    @Test func servesTheTestDriversScreenshotThroughLibvirt() async throws {
        let client = LibvirtClient(uri: "test:///default")
        try await client.connect()
        let calls = Counter()
        // Long TTL: the thumbnail must come from the cached screenshot however slow the host is.
        let cache = ScreenshotCache(screenshotTTL: .seconds(60)) { name in
            await calls.increment()
            return try await client.screenshot(domainName: name)
        }
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: "/usr/share/libvirt/test-screenshot.png")))
        #expect(try await cache.screenshotPNG(domainName: "test") == file)
        #expect(Self.pngSize(try await cache.thumbnailPNG(domainName: "test")) == [320, 238])
        #expect(await calls.value == 1)
        await #expect(throws: LibvirtError.self) { try await cache.screenshotPNG(domainName: "no-such-domain") }
        await client.close()
    }

    actor Counter {
        private(set) var value = 0
        func increment() { value += 1 }
    }
}
