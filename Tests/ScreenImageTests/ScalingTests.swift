import ScreenImage
import Testing

@Suite struct ScalingTests {
    @Test func fourQuadrantsAverageToFourPixels() throws {
        // 4x4: top-left red, top-right green, bottom-left blue, bottom-right white.
        let colors: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]
        var pixels: [UInt8] = []
        for y in 0..<4 { for x in 0..<4 { pixels += colors[(y / 2) * 2 + x / 2] } }
        let scaled = try RasterImage(width: 4, height: 4, pixels: pixels).scaled(width: 2, height: 2)
        #expect(scaled.pixels == colors.flatMap { $0 })
    }

    @Test func oneByOneCheckerboardAveragesToMidGray() throws {
        var pixels: [UInt8] = []
        for y in 0..<8 { for x in 0..<8 { pixels += [UInt8]( repeating: (x + y) % 2 == 0 ? 0 : 255, count: 3) } }
        let scaled = try RasterImage(width: 8, height: 8, pixels: pixels).scaled(width: 4, height: 4)
        #expect(scaled.pixels == [UInt8](repeating: 128, count: 48))  // 127.5 rounds up
    }

    /// 3 -> 2 columns: each output pixel covers one and a half input pixels.
    @Test func partialPixelsAreWeightedByCoverage() throws {
        let image = try RasterImage(width: 3, height: 1, pixels: [0, 0, 0, 90, 90, 90, 180, 180, 180])
        let scaled = image.scaled(width: 2, height: 1)
        // (1 * 0 + 0.5 * 90) / 1.5 = 30 and (0.5 * 90 + 1 * 180) / 1.5 = 150
        #expect(scaled.pixels == [30, 30, 30, 150, 150, 150])
    }

    /// A one-pixel line in a 10-pixel-wide image still shows at a tenth of the width.
    @Test func thinLinesSurviveAsAverages() throws {
        var pixels = [UInt8](repeating: 0, count: 10 * 10 * 3)
        for y in 0..<10 { pixels[(y * 10 + 4) * 3 + 1] = 250 }  // green vertical line at x = 4
        let scaled = try RasterImage(width: 10, height: 10, pixels: pixels).scaled(width: 1, height: 1)
        #expect(scaled.pixels == [0, 25, 0])
    }

    @Test func sizeToFitKeepsTheAspectRatio() throws {
        func size(_ w: Int, _ h: Int) throws -> (Int, Int) {
            try RasterImage(width: w, height: h, pixels: [UInt8](repeating: 0, count: w * h * 3))
                .sizeToFit(maxWidth: 320, maxHeight: 240)
        }
        #expect(try size(720, 400) == (320, 178))  // VGA text mode: 177.8
        #expect(try size(640, 480) == (320, 240))
        #expect(try size(1024, 768) == (320, 240))
        #expect(try size(400, 720) == (133, 240))
        #expect(try size(2000, 1) == (320, 1))  // never 0
        #expect(try size(300, 200) == (300, 200))  // fits already: not enlarged
    }

    @Test func scaledToFitResamplesVGATextModeSize() throws {
        let image = try RasterImage(width: 720, height: 400, pixels: Fixtures.noise(count: 720 * 400 * 3, seed: 1))
        let thumbnail = image.scaledToFit(maxWidth: 320, maxHeight: 240)
        #expect((thumbnail.width, thumbnail.height) == (320, 178))
        let small = try RasterImage(width: 2, height: 2, pixels: [UInt8](repeating: 7, count: 12))
        #expect(small.scaledToFit(maxWidth: 320, maxHeight: 240) == small)
    }

    @Test func uniformImagesStayUniform() throws {
        let image = try RasterImage(width: 97, height: 61, pixels: [UInt8](repeating: 77, count: 97 * 61 * 3))
        #expect(image.scaled(width: 13, height: 7).pixels == [UInt8](repeating: 77, count: 13 * 7 * 3))
    }
}
