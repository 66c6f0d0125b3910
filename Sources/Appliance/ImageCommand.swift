import ArgumentParser
import Foundation
import VMCloud
import VMCloudCore

/// `appliance image ...`: guest image tooling.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build the browser guest image.",
        subcommands: [ImageBuildCommand.self]
    )
}

/// `appliance image build`: debootstrap + init.sh in a chroot -> `<state-dir>/image/`.
struct ImageBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build the browser image (Debian 12 + Xorg + Chromium + guest agent) as root.",
        discussion: """
            Writes disk.qcow2, vmlinuz, initrd.img and cmdline to <state-dir>/image, replacing \
            it only when the whole build succeeded. The debootstrapped root file system is \
            cached in the work directory, so a re-run only re-applies init.sh and repacks.
            """
    )

    @Option(help: "State directory; the image goes to <state-dir>/image.")
    var stateDir = "/var/lib/appliance"

    @Option(help: "Work directory for the cached root file system and temporary files. (default: <state-dir>/image-work)")
    var workDir: String?

    @Option(help: "Statically linked guest-agent binary. (default: built from the source tree into .build-guest)")
    var agent: String?

    @Option(help: "Provisioning script run in the chroot. (default: init.sh of the source tree)")
    var initScript: String?

    @Option(help: "Disk size of the image's ext4 file system, e.g. 3G.")
    var size = "3G"

    @Option(help: "Debian mirror for debootstrap and apt. (default: http://deb.debian.org/debian)")
    var mirror: String?

    @Flag(help: "Compress disk.qcow2 (smaller file, slower guest reads).")
    var compress = false

    func run() throws {
        let sizeBytes: UInt64
        do { sizeBytes = try ImageBuildOptions.parseSize(size) } catch {
            throw ValidationError("\(error)")
        }
        let stateDir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let options = ImageBuildOptions(
            stateDir: stateDir,
            workDir: workDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? stateDir + "/image-work",
            agent: agent.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            initScript: initScript.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            sizeBytes: sizeBytes,
            mirror: mirror,
            compress: compress
        )
        do {
            try ImageBuilder(options: options).build()
        } catch let failure as ImageBuildError {
            FileHandle.standardError.write(Data("appliance image build: error: \(failure)\n".utf8))
            throw ExitCode.failure
        }
    }
}
