import ScreenImage
import Testing

@Suite struct PPMTests {
    @Test func decodesPixelsWithCommentsInTheHeader() throws {
        let pixels: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90]
        let bytes = Fixtures.ppm("P6\n# made by a test\n3 # width\n2\n#maxval next\n255\n", pixels)
        let image = try PPM.decode(bytes)
        #expect(image.width == 3)
        #expect(image.height == 2)
        #expect(image.pixels == pixels)
        #expect(try RasterImage.decode(bytes) == image)
    }

    /// The single whitespace after maxval ends the header even when the data starts with bytes
    /// that look like whitespace or a comment.
    @Test func dataMayStartWithWhitespaceOrHashBytes() throws {
        let pixels: [UInt8] = [0x0A, 0x20, UInt8(ascii: "#")]
        let image = try PPM.decode(Fixtures.ppm("P6 1 1 255\n", pixels))
        #expect(image.pixels == pixels)
    }

    @Test func ignoresBytesAfterThePixelData() throws {
        let image = try PPM.decode(Fixtures.ppm("P6 1 1 255 ", [1, 2, 3, 4, 5]))
        #expect(image.pixels == [1, 2, 3])
    }

    @Test(arguments: [
        ("P5 1 1 255\n", "grayscale magic"),
        ("P3 1 1 255\n", "ASCII magic"),
        ("P61 1 255\n", "no separator after the magic"),
        ("P6 x 1 255\n", "letter as width"),
        ("P6 1 -1 255\n", "negative height"),
        ("P6 1 1 2x5\n", "junk in maxval"),
        ("P6 0 1 255\n", "zero width"),
        ("P6 1 1 0\n", "maxval zero"),
        ("P6 1 1 65536\n", "maxval out of range"),
        ("P6 1 1 255#c\n", "comment instead of the single whitespace"),
    ])
    func rejectsMalformedHeaders(header: String, why: String) {
        let error = #expect(throws: ScreenImageError.self, "\(why)") { try PPM.decode(Fixtures.ppm(header, [1, 2, 3])) }
        guard case .malformed? = error else {
            Issue.record("\(why): expected .malformed, got \(String(describing: error))")
            return
        }
    }

    @Test func sixteenBitSamplesAreUnsupported() {
        #expect(throws: ScreenImageError.unsupported("PPM maxval 65535 (only 255 is decoded)")) {
            try PPM.decode(Fixtures.ppm("P6 1 1 65535\n", [0, 1, 0, 2, 0, 3]))
        }
    }

    @Test(arguments: ["", "P6", "P6 2", "P6 2 2", "P6 2 2 255", "P6 2 2 # comment to the end"])
    func rejectsTruncatedHeaders(header: String) {
        #expect(throws: ScreenImageError.self) { try PPM.decode(Array(header.utf8)) }
    }

    @Test func rejectsTruncatedPixelData() {
        #expect(throws: ScreenImageError.truncated("PPM data has 11 of 12 bytes")) {
            try PPM.decode(Fixtures.ppm("P6 2 2 255\n", [UInt8](repeating: 9, count: 11)))
        }
    }

    /// Sizes are checked against the limits before anything is allocated, and a size within
    /// the limits is checked against the bytes actually present.
    @Test func rejectsOversizedHeadersWithoutAllocating() {
        #expect(throws: ScreenImageError.tooLarge(width: 16385, height: 1)) {
            try PPM.decode(Fixtures.ppm("P6 16385 1 255\n", [1, 2, 3]))
        }
        #expect(throws: ScreenImageError.tooLarge(width: 16384, height: 16384)) {
            try PPM.decode(Fixtures.ppm("P6 16384 16384 255\n", [1, 2, 3]))
        }
        // Saturated rather than overflowed.
        #expect(throws: ScreenImageError.tooLarge(width: Int(Int32.max), height: 1)) {
            try PPM.decode(Fixtures.ppm("P6 99999999999999999999999 1 255\n", [1, 2, 3]))
        }
        #expect(throws: ScreenImageError.truncated("PPM data has 3 of 96000000 bytes")) {
            try PPM.decode(Fixtures.ppm("P6 8000 4000 255\n", [1, 2, 3]))
        }
        let small = ImageLimits(maxDimension: 100, maxPixels: 50)
        #expect(throws: ScreenImageError.tooLarge(width: 10, height: 10)) {
            try PPM.decode(Fixtures.ppm("P6 10 10 255\n", [UInt8](repeating: 0, count: 300)), limits: small)
        }
    }

    @Test func rasterImageChecksItsPixelCount() {
        #expect(throws: ScreenImageError.self) { try RasterImage(width: 2, height: 2, pixels: [0, 0, 0]) }
        #expect(throws: ScreenImageError.self) { try RasterImage(width: 0, height: 2, pixels: []) }
        #expect(throws: ScreenImageError.self) { try RasterImage.decode(Array("GIF89a".utf8)) }
    }
}
