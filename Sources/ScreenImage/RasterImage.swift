/// An 8-bit RGB image: rows top to bottom, 3 bytes per pixel (R, G, B), no row padding.
public struct RasterImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    /// Throws `.malformed` unless both sides are at least 1 and `pixels` holds exactly
    /// `width * height * 3` bytes.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else { throw ScreenImageError.malformed("empty image (\(width)x\(height))") }
        guard pixels.count == width * height * 3 else {
            throw ScreenImageError.malformed("\(pixels.count) pixel bytes for \(width)x\(height) RGB")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Decodes a PNG or a binary PPM, recognised by its first bytes.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = .default) throws -> RasterImage {
        if bytes.starts(with: PNG.signature) { return try PNG.decode(bytes, limits: limits) }
        if bytes.starts(with: Array("P6".utf8)) { return try PPM.decode(bytes, limits: limits) }
        throw ScreenImageError.malformed("neither PNG nor binary PPM (P6)")
    }
}

/// Size limits checked against a header before anything is allocated for the pixels, so a
/// hostile or corrupt header cannot make a decoder allocate gigabytes.
public struct ImageLimits: Sendable, Equatable {
    public var maxDimension: Int
    public var maxPixels: Int

    /// 16384 per side, and 2^25 pixels (8K UHD fits; 96 MiB of RGB).
    public static let `default` = ImageLimits(maxDimension: 16384, maxPixels: 1 << 25)

    public init(maxDimension: Int, maxPixels: Int) {
        self.maxDimension = maxDimension
        self.maxPixels = maxPixels
    }

    func check(width: Int, height: Int) throws {
        guard width > 0, height > 0 else { throw ScreenImageError.malformed("empty image (\(width)x\(height))") }
        guard width <= maxDimension, height <= maxDimension, width * height <= maxPixels else {
            throw ScreenImageError.tooLarge(width: width, height: height)
        }
    }
}
