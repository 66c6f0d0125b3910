/// Area-averaging downscale: every output pixel is the exact average of the source area it
/// covers, partial source pixels weighted by the fraction covered. Good for thumbnails of text
/// and UI, where nearest-neighbour sampling drops thin lines.
extension RasterImage {
    /// The largest size with this image's aspect ratio that fits in `maxWidth` x `maxHeight`;
    /// the image's own size if it already fits (never enlarges). Each side is at least 1.
    public func sizeToFit(maxWidth: Int, maxHeight: Int) -> (width: Int, height: Int) {
        precondition(maxWidth > 0 && maxHeight > 0, "fit box must not be empty")
        if width <= maxWidth && height <= maxHeight { return (width, height) }
        // Compare width/height with maxWidth/maxHeight without division: which side binds.
        if width * maxHeight >= height * maxWidth {
            return (maxWidth, max(1, (height * maxWidth + width / 2) / width))
        }
        return (max(1, (width * maxHeight + height / 2) / height), maxHeight)
    }

    /// This image scaled to fit `maxWidth` x `maxHeight`, keeping its aspect ratio.
    public func scaledToFit(maxWidth: Int, maxHeight: Int) -> RasterImage {
        let size = sizeToFit(maxWidth: maxWidth, maxHeight: maxHeight)
        if size == (width, height) { return self }
        return scaled(width: size.width, height: size.height)
    }

    /// This image resampled to exactly `newWidth` x `newHeight` by area averaging.
    public func scaled(width newWidth: Int, height newHeight: Int) -> RasterImage {
        precondition(newWidth > 0 && newHeight > 0, "scaled image must not be empty")
        let columns = Self.coverage(source: width, destination: newWidth)
        let rows = Self.coverage(source: height, destination: newHeight)
        // Horizontal pass: each source row to newWidth weighted sums (each total weight: width).
        var sums = [Int](repeating: 0, count: newWidth * height * 3)
        pixels.withUnsafeBufferPointer { p in
            for y in 0..<height {
                for (x, column) in columns.enumerated() {
                    for c in 0..<3 {
                        var sum = 0
                        for (k, weight) in column.weights.enumerated() {
                            sum += weight * Int(p[(y * width + column.first + k) * 3 + c])
                        }
                        sums[(y * newWidth + x) * 3 + c] = sum
                    }
                }
            }
        }
        // Vertical pass, then divide by the total weight (width * height), rounding to nearest.
        let total = width * height
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        for (y, row) in rows.enumerated() {
            for i in 0..<newWidth * 3 {
                var sum = 0
                for (k, weight) in row.weights.enumerated() {
                    sum += weight * sums[(row.first + k) * newWidth * 3 + i]
                }
                out[y * newWidth * 3 + i] = UInt8((sum + total / 2) / total)
            }
        }
        // Sizes and byte count match by construction.
        return try! RasterImage(width: newWidth, height: newHeight, pixels: out)
    }

    /// For each destination index along one axis: the first source index it overlaps and the
    /// overlap with each source index from there. Coordinates are multiplied by `source *
    /// destination` so all boundaries are integers: destination j spans [j*source, (j+1)*source),
    /// source i spans [i*destination, (i+1)*destination); each destination's weights sum to `source`.
    private static func coverage(source: Int, destination: Int) -> [(first: Int, weights: [Int])] {
        (0..<destination).map { j in
            let (low, high) = (j * source, (j + 1) * source)
            let first = low / destination
            let last = (high - 1) / destination
            let weights = (first...last).map { i in min(high, (i + 1) * destination) - max(low, i * destination) }
            return (first, weights)
        }
    }
}
