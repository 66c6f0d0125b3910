import Libvirt
import ScreenImage

/// VM screen images as PNG for the API (`GET /v1/vms/{id}/screenshot.png`) and the monitor
/// page's thumbnails. Each image is reused for a short time per domain, so a page polling many
/// VMs, or many viewers of one VM, cost at most one capture per domain per TTL; concurrent
/// requests for a domain share one capture. Failures are not cached.
package actor ScreenshotCache {
    /// Takes a screenshot of the named domain (the appliance passes `LibvirtClient.screenshot`).
    package typealias Capture = @Sendable (_ domainName: String) async throws -> Screenshot

    private enum Kind { case full, thumbnail }

    private struct Key: Hashable {
        package let kind: Kind
        package let domainName: String

        package init(kind: Kind, domainName: String) {
            self.kind = kind
            self.domainName = domainName
        }
    }

    private struct Entry: Sendable {
        package let png: [UInt8]
        /// When the capture it comes from returned: a thumbnail is as old as its screenshot.
        package let capturedAt: ContinuousClock.Instant

        package init(png: [UInt8], capturedAt: ContinuousClock.Instant) {
            self.png = png
            self.capturedAt = capturedAt
        }
    }

    private let capture: Capture
    private let screenshotTTL: Duration
    private let thumbnailTTL: Duration
    private let thumbnailBox: (width: Int, height: Int)
    private let maxEntries: Int
    private var entries: [Key: Entry] = [:]
    private var inFlight: [Key: Task<Entry, Error>] = [:]

    /// `maxEntries` bounds the cached images (screenshots and thumbnails together): past it the
    /// expired ones and then the oldest are dropped.
    package init(
        screenshotTTL: Duration = .seconds(1),
        thumbnailTTL: Duration = .seconds(5),
        thumbnailBox: (width: Int, height: Int) = (320, 240),
        maxEntries: Int = 256,
        capture: @escaping Capture
    ) {
        precondition(maxEntries > 0 && thumbnailBox.width > 0 && thumbnailBox.height > 0)
        self.capture = capture
        self.screenshotTTL = screenshotTTL
        self.thumbnailTTL = thumbnailTTL
        self.thumbnailBox = thumbnailBox
        self.maxEntries = maxEntries
    }

    /// The domain's screen as PNG, at most `screenshotTTL` old. Captures already in PNG are
    /// served as they are; PPM is converted.
    package func screenshotPNG(domainName: String) async throws -> [UInt8] {
        try await entry(Key(kind: .full, domainName: domainName)).png
    }

    /// The domain's screen scaled to fit the thumbnail box, as PNG, at most `thumbnailTTL` old.
    /// Made from the cached screenshot when that is fresh enough.
    package func thumbnailPNG(domainName: String) async throws -> [UInt8] {
        try await entry(Key(kind: .thumbnail, domainName: domainName)).png
    }

    private func ttl(_ kind: Kind) -> Duration {
        kind == .full ? screenshotTTL : thumbnailTTL
    }

    /// The cached entry if fresh, else the result of the capture or conversion under way for the
    /// key, else of a new one. The work runs in its own task: a caller that goes away (a closed
    /// HTTP request) does not cancel it for the others waiting on it.
    private func entry(_ key: Key) async throws -> Entry {
        if let cached = entries[key], ContinuousClock.now - cached.capturedAt < ttl(key.kind) {
            return cached
        }
        if let running = inFlight[key] {
            return try await running.value
        }
        let task = Task { try await self.produce(key) }
        inFlight[key] = task
        defer { inFlight[key] = nil }
        let entry = try await task.value
        store(entry, for: key)
        return entry
    }

    private func produce(_ key: Key) async throws -> Entry {
        switch key.kind {
        case .full:
            let screenshot = try await capture(key.domainName)
            let capturedAt = ContinuousClock.now
            return Entry(png: try await Self.png(of: screenshot), capturedAt: capturedAt)
        case .thumbnail:
            let full = try await entry(Key(kind: .full, domainName: key.domainName))
            let png = try await Self.thumbnail(of: full.png, box: thumbnailBox)
            return Entry(png: png, capturedAt: full.capturedAt)
        }
    }

    private func store(_ entry: Entry, for key: Key) {
        entries[key] = entry
        guard entries.count > maxEntries else { return }
        let now = ContinuousClock.now
        entries = entries.filter { now - $0.value.capturedAt < ttl($0.key.kind) }
        while entries.count > maxEntries, let oldest = entries.min(by: { $0.value.capturedAt < $1.value.capturedAt }) {
            entries[oldest.key] = nil
        }
    }

    // Image work (milliseconds per VGA-sized frame) runs off the actor, so it does not hold up
    // cache hits for other domains.

    @concurrent
    private static func png(of screenshot: Screenshot) async throws -> [UInt8] {
        if screenshot.mimeType == "image/png" { return screenshot.bytes }
        return try PNG.encode(try RasterImage.decode(screenshot.bytes))
    }

    @concurrent
    private static func thumbnail(of png: [UInt8], box: (width: Int, height: Int)) async throws -> [UInt8] {
        let image = try PNG.decode(png).scaledToFit(maxWidth: box.width, maxHeight: box.height)
        return try PNG.encode(image)
    }
}
