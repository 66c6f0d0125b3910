import Foundation
import VMCloudCore

/// `appliance image build`: a Debian 12 root file system (debootstrap, cached), provisioned by
/// init.sh in a chroot, packed into an ext4 qcow2 with the kernel and initramfs next to it.
/// Outputs go to `<state-dir>/image.new` and replace `<state-dir>/image` only at the very end,
/// so a failed build never leaves a half image where `appliance serve` would pick it up.
package struct ImageBuilder {
    let options: ImageBuildOptions
    let log = BuildLog()
    let tools: ToolRunner
    private let fm = FileManager.default

    package init(options: ImageBuildOptions) {
        self.options = options
        self.tools = ToolRunner(log: log)
    }

    /// Kernel command line: root on the virtio disk, console on the serial log, a panic ends
    /// the domain (libvirt destroys it on reboot) instead of hanging.
    static let cmdline = "root=/dev/vda rw console=ttyS0 panic=-1 quiet"

    package func build() throws {
        log.say("appliance image build: \(options.imageDir) (work dir \(options.workDir))")
        log.step("[1/8] checking requirements")
        let found = try BuildRequirements.check(options: options, log: log)
        let (agent, initScript) = try locateInputs()
        log.stepDone()

        log.step("[2/8] guest agent")
        let stagedAgent = try stageAgent(agent)
        log.stepDone(stagedAgent)

        // A killed earlier run may have left /dev etc. bound inside the rootfs: never delete
        // or pack a tree with the host's /dev in it.
        ChrootMounts.unmountStale(under: options.rootfs, tools: tools, log: log)

        log.step("[3/8] debootstrap \(ImageBuildOptions.suite) (minbase) into \(options.rootfs)")
        try debootstrap(debootstrap: found["debootstrap"]!)

        log.step("[4/8] provisioning with \(initScript) in a chroot")
        try provision(agent: stagedAgent, initScript: initScript, chroot: found["chroot"]!)
        log.stepDone()

        let staging = options.stateDir + "/image.new"
        try? fm.removeItem(atPath: staging)
        try create(directory: staging, step: "kernel")

        log.step("[5/8] kernel and initramfs")
        let kernelVersion = try copyKernel(to: staging)
        log.stepDone(kernelVersion)

        log.step("[6/8] ext4 file system (\(options.sizeBytes >> 20) MiB) from the rootfs")
        let raw = options.workDir + "/disk.raw"
        try makeFilesystem(raw: raw, mkfs: found["mkfs.ext4"]!)
        log.stepDone()

        log.step("[7/8] qcow2\(options.compress ? " (compressed)" : "")")
        defer { try? fm.removeItem(atPath: raw) }
        try tools.run(
            step: "qcow2", prefix: "qemu-img", found["qemu-img"]!,
            ["convert", "-p", "-f", "raw", "-O", "qcow2"] + (options.compress ? ["-c"] : []) + [raw, staging + "/disk.qcow2"]
        )
        log.stepDone(sizeText(staging + "/disk.qcow2"))

        log.step("[8/8] installing into \(options.imageDir)")
        try write(Self.cmdline + "\n", to: staging + "/cmdline", step: "install")
        try install(staging: staging)
        for name in ["disk.qcow2", "vmlinuz", "initrd.img", "cmdline"] {
            log.info("\(options.imageDir)/\(name)  \(sizeText(options.imageDir + "/" + name))")
        }
        log.stepDone()
        log.say("image built in \(log.elapsed())")
    }

    // MARK: - steps

    private func locateInputs() throws -> (agent: String?, initScript: String) {
        let step = "check requirements"
        let tree = SourceTree.find()
        let initScript: String
        if let given = options.initScript {
            initScript = given
        } else if let tree {
            initScript = tree.initScript
        } else {
            throw ImageBuildError(step: step, reason: "not run from the vmcloud source tree: pass --init-script PATH (the tree's init.sh)")
        }
        guard fm.isReadableFile(atPath: initScript) else {
            throw ImageBuildError(step: step, reason: "init script \(initScript) is not readable")
        }
        if options.agent == nil && tree == nil {
            throw ImageBuildError(step: step, reason: "not run from the vmcloud source tree: pass --agent PATH (a guest-agent built with -Xswiftc -static-executable)")
        }
        log.info("init script: \(initScript)")
        log.info("guest agent: \(options.agent ?? "built from \(tree!.root)")")
        return (options.agent, initScript)
    }

    /// The agent (given or freshly built), checked to be static and copied into the work dir.
    private func stageAgent(_ given: String?) throws -> String {
        let step = "guest agent"
        let source: String
        if let given {
            source = given
        } else {
            source = try SourceTree.find()!.buildAgent(tools: tools, step: step)
        }
        guard fm.isExecutableFile(atPath: source) else {
            throw ImageBuildError(step: step, reason: "\(source) is not an executable file")
        }
        if let problem = StaticBinaryCheck.problem(with: source) {
            throw ImageBuildError(step: step, reason: problem)
        }
        let staged = options.workDir + "/guest-agent"
        // Via a temporary name: --agent may name the staged copy of an earlier run itself.
        let temporary = staged + ".new"
        try? fm.removeItem(atPath: temporary)
        // Stripped when binutils is there: the symbols are most of a static Swift binary.
        if let strip = ToolRunner.locate("strip") {
            try tools.run(step: step, prefix: "strip", strip, ["-o", temporary, source], quiet: true)
        } else {
            do { try fm.copyItem(atPath: source, toPath: temporary) } catch {
                throw ImageBuildError(step: step, reason: "cannot copy \(source): \(error)")
            }
        }
        guard rename(temporary, staged) == 0 else {
            throw ImageBuildError(step: step, reason: "cannot rename \(temporary) to \(staged)")
        }
        return staged
    }

    private func debootstrap(debootstrap: String) throws {
        let step = "debootstrap"
        if fm.fileExists(atPath: options.rootfsStamp) {
            log.info("reusing the root file system of an earlier build (remove \(options.rootfsStamp) to start over)")
            log.stepDone()
            return
        }
        if fm.fileExists(atPath: options.rootfs) {
            // Left by an interrupted debootstrap; stale mounts were undone above.
            log.info("removing the incomplete \(options.rootfs)")
            try tools.run(step: step, prefix: "rm", "/bin/rm", ["-rf", "--one-file-system", options.rootfs])
        }
        let mirror = options.mirror ?? ImageBuildOptions.defaultMirror
        try tools.run(
            step: step, prefix: "debootstrap", debootstrap,
            ["--variant=minbase", ImageBuildOptions.suite, options.rootfs, mirror]
        )
        try write("\(ImageBuildOptions.suite) \(mirror)\n", to: options.rootfsStamp, step: step)
        log.stepDone(sizeText(options.rootfs))
    }

    /// Copies the agent and init.sh into the rootfs and runs init.sh there, with the kernel
    /// file systems mounted for exactly that long.
    private func provision(agent: String, initScript: String, chroot: String) throws {
        let step = "provision (init.sh)"
        let inside = "/root/vmcloud-build"
        let dir = options.rootfs + inside
        try? fm.removeItem(atPath: dir)
        try create(directory: dir, step: step)
        defer { try? fm.removeItem(atPath: dir) }
        do {
            try fm.copyItem(atPath: agent, toPath: dir + "/guest-agent")
            try fm.copyItem(atPath: initScript, toPath: dir + "/init.sh")
        } catch {
            throw ImageBuildError(step: step, reason: "cannot copy the agent and init.sh into the rootfs: \(error)")
        }

        var mounts = ChrootMounts(root: options.rootfs, tools: tools, log: log)
        defer { mounts.unmountAll() }
        try mounts.mountAll(step: step)
        // A clean environment: nothing of the host's shell (locale, proxies aside) leaks in.
        var env = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
            "GUEST_AGENT": inside + "/guest-agent",
        ]
        if let mirror = options.mirror { env["MIRROR"] = mirror }
        for key in ["http_proxy", "https_proxy", "no_proxy"] {
            if let value = ProcessInfo.processInfo.environment[key] { env[key] = value }
        }
        try tools.run(step: step, prefix: "init.sh", chroot, [options.rootfs, "/bin/bash", inside + "/init.sh"], environment: env)
    }

    /// Copies the newest /boot/vmlinuz-* and its initrd.img-* (built by init.sh with virtio_blk
    /// and ext4). Returns the kernel version.
    private func copyKernel(to staging: String) throws -> String {
        let step = "kernel"
        let boot = options.rootfs + "/boot"
        let kernels = ((try? fm.contentsOfDirectory(atPath: boot)) ?? [])
            .filter { $0.hasPrefix("vmlinuz-") }
            .map { String($0.dropFirst("vmlinuz-".count)) }
            .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
        guard let version = kernels.last else {
            throw ImageBuildError(step: step, reason: "no \(boot)/vmlinuz-*: did init.sh install linux-image-amd64?")
        }
        let initrd = boot + "/initrd.img-" + version
        guard fm.fileExists(atPath: initrd) else {
            throw ImageBuildError(step: step, reason: "no \(initrd) for kernel \(version)")
        }
        do {
            try fm.copyItem(atPath: boot + "/vmlinuz-" + version, toPath: staging + "/vmlinuz")
            try fm.copyItem(atPath: initrd, toPath: staging + "/initrd.img")
        } catch {
            throw ImageBuildError(step: step, reason: "cannot copy the kernel: \(error)")
        }
        return "\(version): vmlinuz \(sizeText(staging + "/vmlinuz")), initrd.img \(sizeText(staging + "/initrd.img"))"
    }

    /// mkfs.ext4 -d populates the file system straight from the directory: no loop mount.
    private func makeFilesystem(raw: String, mkfs: String) throws {
        let step = "ext4 file system"
        try? fm.removeItem(atPath: raw)
        guard fm.createFile(atPath: raw, contents: nil), let handle = FileHandle(forWritingAtPath: raw) else {
            throw ImageBuildError(step: step, reason: "cannot create \(raw)")
        }
        do {
            try handle.truncate(atOffset: options.sizeBytes)  // sparse
            try handle.close()
        } catch {
            throw ImageBuildError(step: step, reason: "cannot size \(raw): \(error)")
        }
        // -m 0: no blocks reserved for root (the browser user needs the space, not root).
        try tools.run(
            step: step, prefix: "mkfs.ext4", mkfs,
            ["-F", "-q", "-L", "vmcloud-root", "-m", "0", "-d", options.rootfs, raw]
        )
    }

    /// image.new -> image, the old image moved aside first and deleted last. Running VMs keep
    /// their open backing file; files are world-readable because QEMU runs as libvirt-qemu.
    private func install(staging: String) throws {
        let step = "install"
        for name in ["disk.qcow2", "vmlinuz", "initrd.img", "cmdline"] {
            try? fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: staging + "/" + name)
        }
        try? fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: staging)
        let old = options.stateDir + "/image.old"
        try? fm.removeItem(atPath: old)
        do {
            if fm.fileExists(atPath: options.imageDir) { try fm.moveItem(atPath: options.imageDir, toPath: old) }
            try fm.moveItem(atPath: staging, toPath: options.imageDir)
        } catch {
            throw ImageBuildError(step: step, reason: "cannot move \(staging) to \(options.imageDir): \(error)")
        }
        try? fm.removeItem(atPath: old)
    }

    // MARK: - helpers

    private func create(directory: String, step: String) throws {
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw ImageBuildError(step: step, reason: "cannot create \(directory): \(error)")
        }
    }

    private func write(_ text: String, to path: String, step: String) throws {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw ImageBuildError(step: step, reason: "cannot write \(path): \(error)")
        }
    }

    /// "1.2 GiB" for files; for directories `du -sh`'s answer.
    private func sizeText(_ path: String) -> String {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return "missing" }
        if isDir.boolValue {
            return tools.capture("/usr/bin/du", ["-sxh", path])?.split(separator: "\t").first.map(String.init) ?? "?"
        }
        let bytes = (try? fm.attributesOfItem(atPath: path)[.size] as? NSNumber)??.doubleValue ?? 0
        return bytes >= 1_073_741_824 ? String(format: "%.2f GiB", bytes / 1_073_741_824) : String(format: "%.1f MiB", bytes / 1_048_576)
    }
}
