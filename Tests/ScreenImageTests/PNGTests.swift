import Foundation
import ScreenImage
import Testing

@Suite struct PNGTests {
    /// Our encoder's output decoded by Pillow: same size, mode RGB, identical pixels.
    @Test(arguments: [(1, 1), (7, 5), (64, 48), (320, 178)])
    func encodedPNGDecodesIdenticallyInPillow(width: Int, height: Int) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let image = try Fixtures.mixedImage(width: width, height: height)
        let path = dir.file("out.png")
        try Data(try PNG.encode(image)).write(to: URL(fileURLWithPath: path))
        let decoded = try Pillow.decode(path: path)
        #expect(decoded.mode == "RGB")
        #expect((decoded.width, decoded.height) == (width, height))
        #expect(decoded.rgb == image.pixels)
        #expect(try PNG.decode(try PNG.encode(image)) == image)
    }

    /// PNGs written by Pillow (its adaptive filtering uses all five filter types) decode to the
    /// pixels Pillow reads back from the same file.
    @Test(arguments: ["RGB", "L", "LA", "RGBA"])
    func decodesPillowsPNGs(mode: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try Fixtures.mixedImage(width: 53, height: 31)
        let path = dir.file("in.png")
        try Pillow.encode(rgb: source.pixels, width: source.width, height: source.height, mode: mode, to: path)
        let reference = try Pillow.decode(path: path)
        let image = try PNG.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(reference.mode == mode)
        #expect((image.width, image.height) == (53, 31))
        #expect(image.pixels == reference.rgb)
    }

    /// The image libvirt's test driver returns from virDomainScreenshot (8-bit grayscale).
    @Test func decodesLibvirtsTestDriverScreenshot() throws {
        let path = "/usr/share/libvirt/test-screenshot.png"
        try #require(FileManager.default.fileExists(atPath: path), "libvirt0 not installed")
        let image = try RasterImage.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let reference = try Pillow.decode(path: path)
        #expect((image.width, image.height) == (reference.width, reference.height))
        #expect(image.pixels == reference.rgb)
    }

    @Test func rejectsDamagedFiles() throws {
        let png = try PNG.encode(try Fixtures.mixedImage(width: 16, height: 16))
        #expect(throws: ScreenImageError.malformed("no PNG signature")) { try PNG.decode(Array(png.dropFirst())) }

        var flipped = png
        flipped[png.count - 20] ^= 0x01  // inside the IDAT data
        #expect(throws: ScreenImageError.malformed("PNG IDAT chunk CRC mismatch")) { try PNG.decode(flipped) }

        #expect(throws: ScreenImageError.truncated("PNG chunk runs past the end")) {
            try PNG.decode(Array(png.prefix(png.count / 2)))
        }
        #expect(throws: ScreenImageError.truncated("PNG ends before IEND")) { try PNG.decode(Array(png.dropLast(12))) }
    }

    /// A well-formed IHDR announcing a huge image is refused before any image data is read.
    @Test func rejectsOversizedHeaders() throws {
        let huge = pngHeader(width: 100_000, height: 100_000, depth: 8, colorType: 2)
        #expect(throws: ScreenImageError.tooLarge(width: 100_000, height: 100_000)) { try PNG.decode(huge) }
    }

    @Test func rejectsVariantsItDoesNotDecode() {
        #expect(throws: ScreenImageError.unsupported("PNG bit depth 16")) {
            try PNG.decode(pngHeader(width: 1, height: 1, depth: 16, colorType: 2))
        }
        #expect(throws: ScreenImageError.unsupported("PNG colour type 3")) {
            try PNG.decode(pngHeader(width: 1, height: 1, depth: 8, colorType: 3))
        }
    }

    /// Image data that inflates to more bytes than the header allows is refused.
    @Test func rejectsImageDataLongerThanTheHeaderSays() throws {
        let big = try PNG.encode(try Fixtures.mixedImage(width: 8, height: 8))
        let small = try PNG.encode(try Fixtures.mixedImage(width: 8, height: 4))
        // The small image's IHDR (33 bytes after the signature) with the big image's IDAT and IEND.
        let spliced = Array(small.prefix(33)) + Array(big.dropFirst(33))
        #expect(throws: ScreenImageError.malformed("decompressed data exceeds the expected 100 bytes")) {
            try PNG.decode(spliced)
        }
    }

    /// Signature + IHDR chunk with a correct CRC (computed by an independent CRC-32 below).
    private func pngHeader(width: UInt32, height: UInt32, depth: UInt8, colorType: UInt8) -> [UInt8] {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        let body = Array("IHDR".utf8) + be(width) + be(height) + [depth, colorType, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be(13) + body + be(crc32(body))
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return ~crc
    }
}
