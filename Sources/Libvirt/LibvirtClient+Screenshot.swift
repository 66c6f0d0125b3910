import CLibvirt

/// A screen image exactly as the hypervisor encoded it: "image/png" when QEMU can write PNG
/// screendumps (QEMU 7.2 with libvirt 9.0 on the build machine does), otherwise
/// "image/x-portable-pixmap" (binary PPM). libvirt's test driver returns a grayscale PNG.
public struct Screenshot: Sendable, Equatable {
    public let mimeType: String
    public let bytes: [UInt8]

    public init(mimeType: String, bytes: [UInt8]) {
        self.mimeType = mimeType
        self.bytes = bytes
    }
}

/// The hypervisor sent more than the caller's byte limit; the stream was aborted.
public struct ScreenshotTooLargeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let domainName: String
    public let limit: Int

    public var description: String { "screenshot of \(domainName) exceeds \(limit) bytes" }
}

extension LibvirtClient {
    /// Takes a screenshot of a running domain's display `screen` (virDomainScreenshot). The whole
    /// transfer runs on the client's queue: it blocks other libvirt operations meanwhile (a few
    /// milliseconds for a VGA-sized PNG). Fails with `ScreenshotTooLargeError` past `maxBytes`.
    public func screenshot(domainName: String, screen: UInt32 = 0, maxBytes: Int = 64 << 20) async throws -> Screenshot {
        try await perform { try $0.screenshot(domainName: domainName, screen: screen, maxBytes: maxBytes) }
    }
}

extension LibvirtConnection {
    func screenshot(domainName: String, screen: UInt32, maxBytes: Int) throws -> Screenshot {
        guard let conn = pointer else { throw LibvirtClientError.notConnected }
        let dom = try DomainHandle.require(conn, name: domainName)
        let stream = try StreamHandle(conn)
        guard let mimeType = virDomainScreenshot(dom.pointer, stream.pointer, screen, 0) else {
            throw LibvirtError.takeLast(operation: "virDomainScreenshot(\(domainName))")
        }
        let mime = DomainHandle.takeString(mimeType)
        let bytes = try stream.receiveAll(maxBytes: maxBytes) { ScreenshotTooLargeError(domainName: domainName, limit: $0) }
        try stream.finish()
        return Screenshot(mimeType: mime, bytes: bytes)
    }
}

/// Owns one blocking `virStreamPtr`: aborts it unless it was finished, then frees it. Used only
/// on the client's queue.
final class StreamHandle {
    let pointer: OpaquePointer
    private var finished = false

    init(_ conn: OpaquePointer) throws {
        guard let ptr = virStreamNew(conn, 0) else { throw LibvirtError.takeLast(operation: "virStreamNew") }
        pointer = ptr
    }

    deinit {
        // Abort tells the other end to stop sending; without it an abandoned transfer (error,
        // size limit) would leave the stream open on the daemon's side.
        if !finished, virStreamAbort(pointer) < 0 { virResetLastError() }
        virStreamFree(pointer)
    }

    /// Reads until end of stream; throws `tooLarge(maxBytes)` as soon as more than `maxBytes` arrive.
    func receiveAll(maxBytes: Int, tooLarge: (Int) -> Error) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                virStreamRecv(pointer, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
            }
            if count == 0 { return bytes }
            // -2 (would block) only happens on non-blocking streams; this one blocks.
            guard count > 0 else { throw LibvirtError.takeLast(operation: "virStreamRecv") }
            guard bytes.count + Int(count) <= maxBytes else { throw tooLarge(maxBytes) }
            bytes.append(contentsOf: buffer[..<Int(count)])
        }
    }

    /// Completes the transfer; after this (even if it fails) the stream is not aborted.
    func finish() throws {
        finished = true
        guard virStreamFinish(pointer) == 0 else { throw LibvirtError.takeLast(operation: "virStreamFinish") }
    }
}
