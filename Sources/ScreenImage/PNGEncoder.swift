/// PNG encoding: 8-bit RGB, not interlaced, one IDAT chunk.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Encodes `image`. `level` is zlib's compression level (0-9).
    public static func encode(_ image: RasterImage, level: Int32 = 6) throws -> [UInt8] {
        var ihdr: [UInt8] = []
        appendUInt32(UInt32(image.width), to: &ihdr)
        appendUInt32(UInt32(image.height), to: &ihdr)
        ihdr += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, adaptive filters, no interlace
        var png = signature
        appendChunk("IHDR", ihdr, to: &png)
        appendChunk("IDAT", try Zlib.compress(filtered(image), level: level), to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    /// Each row prefixed by its filter type: None, Sub or Up, whichever gives the smallest sum of
    /// residuals taken as signed bytes (the usual heuristic: small residuals deflate best).
    private static func filtered(_ image: RasterImage) -> [UInt8] {
        let stride = image.width * 3
        var out = [UInt8](repeating: 0, count: image.height * (1 + stride))
        var sub = [UInt8](repeating: 0, count: stride)
        var up = [UInt8](repeating: 0, count: stride)
        image.pixels.withUnsafeBufferPointer { p in
            for y in 0..<image.height {
                let row = y * stride
                var (noneCost, subCost, upCost) = (0, 0, 0)
                for i in 0..<stride {
                    let value = p[row + i]
                    sub[i] = value &- (i >= 3 ? p[row + i - 3] : 0)
                    up[i] = value &- (y > 0 ? p[row + i - stride] : 0)
                    noneCost += cost(value)
                    subCost += cost(sub[i])
                    upCost += cost(up[i])
                }
                let target = y * (1 + stride)
                let (filter, bytes): (UInt8, [UInt8])
                if noneCost <= subCost && noneCost <= upCost {
                    (filter, bytes) = (0, Array(p[row..<row + stride]))
                } else {
                    (filter, bytes) = subCost <= upCost ? (1, sub) : (2, up)
                }
                out[target] = filter
                out.replaceSubrange(target + 1..<target + 1 + stride, with: bytes)
            }
        }
        return out
    }

    private static func cost(_ residual: UInt8) -> Int {
        abs(Int(Int8(bitPattern: residual)))
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
        appendUInt32(UInt32(data.count), to: &png)
        let body = Array(type.utf8) + data
        png += body
        appendUInt32(body.withUnsafeBytes { Zlib.crc32($0) }, to: &png)
    }

    private static func appendUInt32(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}
