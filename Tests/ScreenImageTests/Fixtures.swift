import Foundation
import ScreenImage
import Testing

enum Fixtures {
    /// A binary PPM with the given header text (everything before the pixel data).
    static func ppm(_ header: String, _ pixels: [UInt8]) -> [UInt8] {
        Array(header.utf8) + pixels
    }

    /// Deterministic pseudo-random bytes (64-bit LCG) for images with no structure.
    static func noise(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    /// Rows of four kinds, so the encoder picks each of its filters: noise, a horizontal
    /// gradient (Sub wins), a copy of the row above (Up wins) and black (None wins).
    static func mixedImage(width: Int, height: Int) throws -> RasterImage {
        let noise = noise(count: width * height * 3, seed: 7)
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                switch y % 4 {
                case 0: pixels += noise[i..<i + 3]
                case 1, 2: pixels += [UInt8((x * 5) & 0xFF), 40, UInt8((x + y / 4) & 0xFF)]
                default: pixels += [0, 0, 0]
                }
            }
        }
        return try RasterImage(width: width, height: height, pixels: pixels)
    }
}

/// Pillow, an independent PNG implementation, through Debian's python3 (python3-pil).
enum Pillow {
    static let python = "/usr/bin/python3"

    /// Decodes the PNG at `path` with Pillow: its mode, size and RGB bytes.
    static func decode(path: String) throws -> (mode: String, width: Int, height: Int, rgb: [UInt8]) {
        let script = """
            import sys
            from PIL import Image
            im = Image.open(sys.argv[1]); im.load()
            sys.stdout.write(f"{im.mode} {im.width} {im.height}\\n"); sys.stdout.flush()
            sys.stdout.buffer.write(im.convert("RGB").tobytes())
            """
        let output = try run([python, "-c", script, path])
        let newline = try #require(output.firstIndex(of: UInt8(ascii: "\n")))
        let fields = String(decoding: output[..<newline], as: UTF8.self).split(separator: " ")
        try #require(fields.count == 3)
        return (String(fields[0]), Int(fields[1])!, Int(fields[2])!, Array(output[(newline + 1)...]))
    }

    /// Writes `rgb` (width x height) as a PNG in Pillow mode `mode` (converted from RGB).
    static func encode(rgb: [UInt8], width: Int, height: Int, mode: String, to path: String) throws {
        let raw = path + ".rgb"
        try Data(rgb).write(to: URL(fileURLWithPath: raw))
        defer { try? FileManager.default.removeItem(atPath: raw) }
        let script = """
            import sys
            from PIL import Image
            im = Image.frombytes("RGB", (int(sys.argv[2]), int(sys.argv[3])), open(sys.argv[1], "rb").read())
            im.convert(sys.argv[4]).save(sys.argv[5], optimize=True)
            """
        _ = try run([python, "-c", script, raw, "\(width)", "\(height)", mode, path])
    }

    private static func run(_ arguments: [String]) throws -> [UInt8] {
        try #require(FileManager.default.isExecutableFile(atPath: python), "\(python) missing")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Read before waiting: a full pipe would block the child forever.
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(
            process.terminationStatus == 0,
            "python3 failed (is python3-pil installed?): \(String(decoding: errors, as: UTF8.self))"
        )
        return Array(output)
    }
}

/// A file path in a fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("screenimage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}
