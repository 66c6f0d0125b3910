/// Binary PPM (P6) decoding: what QEMU's `screendump` writes when PNG is not available.
public enum PPM {
    /// Decodes a P6 image with maxval 255. Comments (`#` to end of line) may appear between the
    /// header fields. Bytes after the pixel data are ignored.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = .default) throws -> RasterImage {
        guard bytes.starts(with: Array("P6".utf8)) else {
            throw ScreenImageError.malformed("not a binary PPM: expected \"P6\"")
        }
        var header = HeaderReader(bytes: bytes, position: 2)
        let width = try header.number("width")
        let height = try header.number("height")
        let maxval = try header.number("maxval")
        // Checked before anything is allocated for the pixels.
        try limits.check(width: width, height: height)
        guard (1...65535).contains(maxval) else { throw ScreenImageError.malformed("maxval \(maxval) out of range") }
        guard maxval == 255 else { throw ScreenImageError.unsupported("PPM maxval \(maxval) (only 255 is decoded)") }
        // Exactly one whitespace byte separates the header from the data (which may itself
        // start with a whitespace or '#' byte).
        guard header.position < bytes.count else { throw ScreenImageError.truncated("PPM header ends after maxval") }
        guard HeaderReader.isWhitespace(bytes[header.position]) else {
            throw ScreenImageError.malformed("no whitespace after maxval")
        }
        let start = header.position + 1
        let length = width * height * 3
        guard bytes.count - start >= length else {
            throw ScreenImageError.truncated("PPM data has \(bytes.count - start) of \(length) bytes")
        }
        return try RasterImage(width: width, height: height, pixels: Array(bytes[start..<start + length]))
    }

    private struct HeaderReader {
        let bytes: [UInt8]
        var position: Int

        static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || (0x09...0x0D).contains(byte)  // space, \t \n \v \f \r
        }

        /// Skips whitespace and comments, then reads a decimal number that must be followed by
        /// whitespace or a comment. Saturates instead of overflowing: the limits check rejects it.
        mutating func number(_ field: String) throws -> Int {
            var sawSeparator = false
            while position < bytes.count {
                if Self.isWhitespace(bytes[position]) {
                    position += 1
                } else if bytes[position] == UInt8(ascii: "#") {
                    while position < bytes.count, bytes[position] != UInt8(ascii: "\n"), bytes[position] != UInt8(ascii: "\r") {
                        position += 1
                    }
                } else {
                    break
                }
                sawSeparator = true
            }
            guard position < bytes.count else { throw ScreenImageError.truncated("PPM header ends before \(field)") }
            guard sawSeparator else { throw ScreenImageError.malformed("no separator before \(field)") }
            var value = 0
            var digits = 0
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                value = min(value * 10 + Int(bytes[position] - UInt8(ascii: "0")), Int(Int32.max))
                digits += 1
                position += 1
            }
            guard digits > 0 else { throw ScreenImageError.malformed("PPM \(field) is not a number") }
            guard position < bytes.count else { throw ScreenImageError.truncated("PPM header ends after \(field)") }
            guard Self.isWhitespace(bytes[position]) || bytes[position] == UInt8(ascii: "#") else {
                throw ScreenImageError.malformed("PPM \(field) is not a number")
            }
            return value
        }
    }
}
