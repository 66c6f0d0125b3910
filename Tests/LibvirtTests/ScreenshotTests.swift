import Foundation
import Libvirt
import Testing

/// virDomainScreenshot through the test driver: it streams /usr/share/libvirt/test-screenshot.png.
extension TestDriverTests {
    @Test func screenshotStreamsTheTestDriversPNG() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let shot = try await client.screenshot(domainName: "test")
        #expect(shot.mimeType == "image/png")
        let file = try Data(contentsOf: URL(fileURLWithPath: "/usr/share/libvirt/test-screenshot.png"))
        #expect(shot.bytes == Array(file))
        #expect(ImageHeader.size(of: shot) == ImageSize(width: 1120, height: 832))
        await client.close()
    }

    /// Past the byte limit the stream is aborted and freed; the connection keeps working.
    @Test func screenshotOverTheByteLimitIsAbortedCleanly() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let error = try await #require(throws: ScreenshotTooLargeError.self) {
            try await client.screenshot(domainName: "test", maxBytes: 1000)
        }
        #expect(error.limit == 1000 && error.domainName == "test")
        #expect(try await client.screenshot(domainName: "test").bytes.count > 1000)
        await client.close()
    }

    @Test func screenshotOfAnUnknownDomainCarriesLibvirtsError() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let name = TestNames.unique("no-such-domain")
        let error = try await #require(throws: LibvirtError.self) { try await client.screenshot(domainName: name) }
        #expect(error.isNoSuchDomain)
        await client.close()
    }
}

/// A real screendump from a TCG guest: firmware only (SeaBIOS, nothing to boot) with the
/// appliance's display devices, VGA and VNC on a unix socket.
extension QemuSystemTests {
    @Test(.timeLimit(.minutes(2))) func screenshotOfATCGGuest() async throws {
        let dir = try QemuAccessibleDirectory()
        defer { dir.remove() }
        let name = TestNames.unique("vmcloud-libvirt-screenshot")
        let def = DomainDefinition(
            name: name, type: .qemu, memoryMiB: 64, vcpus: 1, userNetwork: false,
            vncSocketPath: "\(dir.path)/vnc.sock", videoModel: "vga"
        )
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        do {
            _ = try await client.createTransientDomain(xml: try def.xml())
            let vgaText = ImageSize(width: 720, height: 400)
            // Until SeaBIOS switches to VGA text mode the display may still be in another mode.
            var shot = try await client.screenshot(domainName: name)
            let deadline = ContinuousClock.now + .seconds(30)
            while ImageHeader.size(of: shot) != vgaText, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
                shot = try await client.screenshot(domainName: name)
            }
            print("screenshot of a TCG guest: \(shot.mimeType), \(shot.bytes.count) bytes, \(ImageHeader.size(of: shot).map { "\($0.width)x\($0.height)" } ?? "?")")
            #expect(["image/png", "image/x-portable-pixmap"].contains(shot.mimeType))
            let size = try #require(ImageHeader.size(of: shot), "undecodable header: \(shot.bytes.prefix(16))")
            #expect(size == vgaText, "expected VGA text mode")
        } catch {
            _ = try? await client.destroyDomain(name: name)
            await client.close()
            throw error
        }
        #expect(try await client.destroyDomain(name: name))
        await client.close()
    }
}

struct ImageSize: Equatable {
    let width: Int
    let height: Int
}

/// Width and height from a PNG's IHDR or a PPM header (this target does not link ScreenImage).
enum ImageHeader {
    static func size(of shot: Screenshot) -> ImageSize? {
        let b = shot.bytes
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), b.count >= 24, b[12..<16].elementsEqual("IHDR".utf8) {
            func be(_ at: Int) -> Int { b[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
            return ImageSize(width: be(16), height: be(20))
        }
        // "P6 <width> <height> <maxval>" (no comments: QEMU writes none).
        let fields = String(decoding: b.prefix(32), as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count >= 3, fields[0] == "P6", let w = Int(fields[1]), let h = Int(fields[2]) else { return nil }
        return ImageSize(width: w, height: h)
    }
}
