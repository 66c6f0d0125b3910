import CZlib

/// The zlib calls the PNG codec needs. Each call owns its C state for exactly its own duration.
enum Zlib {
    /// CRC-32 (the PNG chunk checksum), continuing from `initial`.
    static func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        UInt32(CZlib.crc32_z(uLong(initial), bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), z_size_t(bytes.count)))
    }

    /// A complete zlib stream (header, deflate data, Adler-32) of `input`.
    static func compress(_ input: [UInt8], level: Int32) throws -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let rc = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { compress2(out.baseAddress, &length, $0.baseAddress, uLong($0.count), level) }
        }
        guard rc == Z_OK else { throw ScreenImageError.zlib("compress2 failed (\(rc))") }
        output.removeSubrange(Int(length)...)
        return output
    }

    /// Inflates one complete zlib stream. The output grows as data actually arrives (not to a
    /// size announced in a header), and more than `limit` bytes of it is an error.
    static func decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        guard input.count <= Int(UInt32.max) else { throw ScreenImageError.unsupported("compressed data over 4 GiB") }
        // Heap-allocated: zlib's internal state points back at the z_stream, so it must not move.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        let initRC = inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initRC == Z_OK else { throw ScreenImageError.zlib("inflateInit failed (\(initRC))") }
        defer { inflateEnd(stream) }

        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var rc: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuffer in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.pointee.avail_in = uInt(inBuffer.count)
            while rc == Z_OK {
                let produced = chunk.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    rc = inflate(stream, Z_NO_FLUSH)
                    return out.count - Int(stream.pointee.avail_out)
                }
                guard output.count + produced <= limit else {
                    throw ScreenImageError.malformed("decompressed data exceeds the expected \(limit) bytes")
                }
                output.append(contentsOf: chunk[..<produced])
            }
        }
        switch rc {
        case Z_STREAM_END:
            return output
        case Z_BUF_ERROR:  // no progress possible: the input ended inside the stream
            throw ScreenImageError.truncated("compressed data ends early")
        default:
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "code \(rc)"
            throw ScreenImageError.malformed("inflate: \(message)")
        }
    }
}
