/// PNG decoding for what libvirt hands back: QEMU's `screendump` (8-bit RGB) and the test
/// driver's sample (8-bit grayscale). 8-bit gray, gray+alpha, RGB and RGBA, not interlaced;
/// alpha is dropped. Every chunk's CRC is checked.
extension PNG {
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = .default) throws -> RasterImage {
        guard bytes.starts(with: signature) else { throw ScreenImageError.malformed("no PNG signature") }
        var position = signature.count
        var header: Header?
        var compressed: [UInt8] = []
        while true {
            guard bytes.count - position >= 12 else { throw ScreenImageError.truncated("PNG ends before IEND") }
            let length = Int(readUInt32(bytes[...], at: position))
            guard length <= Int(Int32.max) else { throw ScreenImageError.malformed("PNG chunk length \(length)") }
            guard bytes.count - position - 12 >= length else { throw ScreenImageError.truncated("PNG chunk runs past the end") }
            let typeRange = position + 4..<position + 8
            let dataRange = position + 8..<position + 8 + length
            let type = String(decoding: bytes[typeRange], as: UTF8.self)
            let crc = bytes.withUnsafeBytes { Zlib.crc32(UnsafeRawBufferPointer(rebasing: $0[typeRange.lowerBound..<dataRange.upperBound])) }
            guard crc == readUInt32(bytes[...], at: dataRange.upperBound) else {
                throw ScreenImageError.malformed("PNG \(type) chunk CRC mismatch")
            }
            position = dataRange.upperBound + 4

            if type == "IHDR" {
                guard header == nil else { throw ScreenImageError.malformed("second IHDR") }
                header = try Header(bytes[dataRange], limits: limits)
                continue
            }
            guard let header else { throw ScreenImageError.malformed("PNG does not start with IHDR") }
            switch type {
            case "IDAT":
                compressed.append(contentsOf: bytes[dataRange])
            case "IEND":
                return try header.image(from: compressed)
            default:
                // Bit 5 of the first letter (lowercase) marks an ancillary chunk, safe to skip.
                // PLTE is critical but only a display hint in the colour types decoded here.
                guard bytes[typeRange.lowerBound] & 0x20 != 0 || type == "PLTE" else {
                    throw ScreenImageError.unsupported("critical PNG chunk \(type)")
                }
            }
        }
    }

    private struct Header {
        let width: Int
        let height: Int
        let channels: Int  // bytes per pixel, all samples 8-bit

        init(_ data: ArraySlice<UInt8>, limits: ImageLimits) throws {
            guard data.count == 13 else { throw ScreenImageError.malformed("IHDR of \(data.count) bytes") }
            let base = data.startIndex
            width = Int(readUInt32(data, at: base))
            height = Int(readUInt32(data, at: base + 4))
            let (depth, colorType) = (data[base + 8], data[base + 9])
            guard data[base + 10] == 0, data[base + 11] == 0 else {
                throw ScreenImageError.malformed("unknown PNG compression or filter method")
            }
            guard data[base + 12] == 0 else { throw ScreenImageError.unsupported("interlaced PNG") }
            guard depth == 8 else { throw ScreenImageError.unsupported("PNG bit depth \(depth)") }
            switch colorType {
            case 0: channels = 1  // gray
            case 2: channels = 3  // RGB
            case 4: channels = 2  // gray + alpha
            case 6: channels = 4  // RGBA
            default: throw ScreenImageError.unsupported("PNG colour type \(colorType)")
            }
            try limits.check(width: width, height: height)
        }

        func image(from compressed: [UInt8]) throws -> RasterImage {
            let stride = width * channels
            let expected = height * (1 + stride)
            var data = try Zlib.decompress(compressed, limit: expected)
            guard data.count == expected else {
                throw ScreenImageError.truncated("PNG image data has \(data.count) of \(expected) bytes")
            }
            try unfilter(&data, stride: stride)
            return try RasterImage(width: width, height: height, pixels: rgb(data, stride: stride))
        }

        /// Reverses each row's filter in place (row y's bytes start at y * (1 + stride) + 1).
        private func unfilter(_ data: inout [UInt8], stride: Int) throws {
            let bpp = channels
            try data.withUnsafeMutableBufferPointer { d in
                for y in 0..<height {
                    let row = y * (1 + stride) + 1
                    let prior = row - (1 + stride)  // only read when y > 0
                    let filter = d[row - 1]
                    for i in 0..<stride {
                        let left = i >= bpp ? Int(d[row + i - bpp]) : 0
                        let up = y > 0 ? Int(d[prior + i]) : 0
                        let upLeft = y > 0 && i >= bpp ? Int(d[prior + i - bpp]) : 0
                        let predictor: Int
                        switch filter {
                        case 0: predictor = 0
                        case 1: predictor = left
                        case 2: predictor = up
                        case 3: predictor = (left + up) / 2
                        case 4: predictor = paeth(left, up, upLeft)
                        default: throw ScreenImageError.malformed("PNG filter type \(filter)")
                        }
                        d[row + i] &+= UInt8(truncatingIfNeeded: predictor)
                    }
                }
            }
        }

        private func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
            let p = a + b - c
            let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
            if pa <= pb && pa <= pc { return a }
            return pb <= pc ? b : c
        }

        /// Drops the filter bytes and converts to RGB.
        private func rgb(_ data: [UInt8], stride: Int) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: width * height * 3)
            out.withUnsafeMutableBufferPointer { o in
                data.withUnsafeBufferPointer { d in
                    for y in 0..<height {
                        let row = y * (1 + stride) + 1
                        for x in 0..<width {
                            let s = row + x * channels
                            let t = (y * width + x) * 3
                            if channels >= 3 {
                                (o[t], o[t + 1], o[t + 2]) = (d[s], d[s + 1], d[s + 2])
                            } else {
                                (o[t], o[t + 1], o[t + 2]) = (d[s], d[s], d[s])
                            }
                        }
                    }
                }
            }
            return out
        }
    }
}

/// The big-endian UInt32 at `offset` (an index of the slice's base array).
private func readUInt32(_ bytes: ArraySlice<UInt8>, at offset: Int) -> UInt32 {
    bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
}
