import Foundation
import VMCloudCore

/// The vmcloud source tree, when the appliance runs from one: it supplies the default
/// init.sh and builds the default guest agent. An installed appliance has none and the user
/// must pass --agent and --init-script.
struct SourceTree {
    let root: String

    /// The current directory if it is the tree, else the tree this binary was compiled from
    /// (#filePath) if it still exists.
    static func find() -> SourceTree? {
        let compiledIn = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        for candidate in [FileManager.default.currentDirectoryPath, compiledIn] {
            let fm = FileManager.default
            if fm.fileExists(atPath: candidate + "/Package.swift"),
               fm.fileExists(atPath: candidate + "/Sources/GuestAgent"),
               fm.fileExists(atPath: candidate + "/init.sh") {
                return SourceTree(root: candidate)
            }
        }
        return nil
    }

    var initScript: String { root + "/init.sh" }
    var agentScratchPath: String { root + "/.build-guest" }

    /// `swift build -c release --product guest-agent -Xswiftc -static-executable`: a binary
    /// with no library dependencies (the image has no Swift runtime).
    func buildAgent(tools: ToolRunner, step: String) throws -> String {
        let candidates = [ToolRunner.locate("swift"), "/opt/swift/usr/bin/swift"].compactMap { $0 }
        guard let swift = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ImageBuildError(step: step, reason: "no swift toolchain to build the guest agent (expected swift in PATH or /opt/swift/usr/bin); pass --agent PATH instead")
        }
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = (swift as NSString).deletingLastPathComponent + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        try tools.run(
            step: step, prefix: "swift", swift,
            ["build", "--package-path", root, "-c", "release", "--product", "guest-agent",
             "--scratch-path", agentScratchPath, "-Xswiftc", "-static-executable"],
            environment: env
        )
        return agentScratchPath + "/release/guest-agent"
    }
}

/// The guest agent must be a statically linked ELF executable: an ELF with a PT_INTERP
/// program header needs a dynamic loader and Swift runtime libraries the image lacks.
enum StaticBinaryCheck {
    static func problem(with path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "cannot read \(path)" }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 64), case let header = [UInt8](data), header.count == 64,
              Array(header.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46] else { return "\(path) is not an ELF file" }
        guard header[4] == 2, header[5] == 1 else { return "\(path) is not a little-endian 64-bit ELF" }
        func u16(_ at: Int) -> Int { Int(header[at]) | Int(header[at + 1]) << 8 }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(header[at + $1]) << (8 * UInt64($1)) } }
        guard u16(18) == 62 else { return "\(path) is not an x86-64 binary" }
        let phoff = u64(32), phentsize = u16(54), phnum = u16(56)
        guard (try? handle.seek(toOffset: phoff)) != nil,
              let data = try? handle.read(upToCount: phentsize * phnum), case let table = [UInt8](data),
              table.count == phentsize * phnum else {
            return "\(path): truncated ELF program headers"
        }
        for i in 0..<phnum {
            let type = UInt32(table[i * phentsize]) | UInt32(table[i * phentsize + 1]) << 8
                | UInt32(table[i * phentsize + 2]) << 16 | UInt32(table[i * phentsize + 3]) << 24
            if type == 3 {  // PT_INTERP
                return "\(path) is dynamically linked; build it with `swift build -c release --product guest-agent -Xswiftc -static-executable`"
            }
        }
        return nil
    }
}
