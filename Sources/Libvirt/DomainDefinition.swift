/// A domain description rendered to libvirt domain XML. Every caller-supplied value is escaped;
/// caller-supplied XML names (metadata prefix, element, attribute names) are validated.
public struct DomainDefinition: Sendable, Equatable {
    /// `<domain type=...>`: `qemu` is TCG (software emulation), `kvm` hardware acceleration.
    public enum HypervisorType: String, Sendable, Equatable {
        case qemu
        case kvm
    }

    /// Direct kernel boot (`<kernel>`, `<initrd>`, `<cmdline>` inside `<os>`).
    public struct KernelBoot: Sendable, Equatable {
        public var kernelPath: String
        public var initrdPath: String?
        public var cmdline: String?

        public init(kernelPath: String, initrdPath: String? = nil, cmdline: String? = nil) {
            self.kernelPath = kernelPath
            self.initrdPath = initrdPath
            self.cmdline = cmdline
        }
    }

    /// A virtio-serial port exposed on the host as a unix socket that QEMU listens on.
    /// The guest's sound card (ICH9 HDA) played into a PulseAudio sink on the host.
    public struct Audio: Sendable, Equatable {
        /// The PulseAudio server QEMU connects to (a unix socket path).
        public var serverSocketPath: String
        /// The sink the guest's output goes to.
        public var sinkName: String

        public init(serverSocketPath: String, sinkName: String) {
            self.serverSocketPath = serverSocketPath
            self.sinkName = sinkName
        }
    }

    public struct Channel: Sendable, Equatable {
        public var socketPath: String
        public var targetName: String

        public init(socketPath: String, targetName: String) {
            self.socketPath = socketPath
            self.targetName = targetName
        }
    }

    /// A further disk file on the virtio bus (`vdb`, ...).
    public struct Disk: Sendable, Equatable {
        public var path: String
        /// `qcow2` or `raw`.
        public var format: String
        public var target: String
        public var readOnly: Bool

        public init(path: String, format: String = "qcow2", target: String, readOnly: Bool = false) {
            self.path = path
            self.format = format
            self.target = target
            self.readOnly = readOnly
        }
    }

    /// An IDE cdrom drive (`hdc`). It exists even when empty so that media can be inserted
    /// into the running domain later (`cdromDeviceXML`).
    public struct Cdrom: Sendable, Equatable {
        public var mediaPath: String?

        public init(mediaPath: String? = nil) { self.mediaPath = mediaPath }
    }

    public struct Attribute: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// One element in `<metadata>`: `<prefix:element xmlns:prefix='namespaceURI' a='v' .../>`.
    /// libvirt keys metadata by namespace URI (see `LibvirtClient.metadata(domain:namespaceURI:)`).
    public struct Metadata: Sendable, Equatable {
        public var namespaceURI: String
        public var prefix: String
        public var element: String
        public var attributes: [Attribute]

        public init(namespaceURI: String, prefix: String, element: String, attributes: [Attribute]) {
            self.namespaceURI = namespaceURI
            self.prefix = prefix
            self.element = element
            self.attributes = attributes
        }
    }

    public var name: String
    public var type: HypervisorType
    public var memoryMiB: Int
    public var vcpus: Int
    public var arch: String = "x86_64"
    public var machine: String = "pc"
    public var kernelBoot: KernelBoot?
    /// qcow2 disk (typically an overlay) attached as virtio `vda`.
    public var diskPath: String?
    public var extraDisks: [Disk] = []
    public var cdrom: Cdrom?
    /// A user-mode (SLIRP) virtio NIC.
    public var userNetwork: Bool = true
    /// A libvirt virtual network (e.g. "default", NAT) for the virtio NIC instead of user mode.
    public var networkName: String?
    public var channel: Channel?
    /// Serial port 0 written to this file (the guest console with `console=ttyS0`).
    public var serialLogPath: String?
    /// VNC served on a unix socket rather than TCP.
    public var vncSocketPath: String?
    /// `<video><model type=.../>`; nil renders no video element.
    public var videoModel: String? = "vga"
    /// A virtio tablet (`<input type='tablet' bus='virtio'/>`): QEMU sends VNC pointer events to
    /// it as absolute positions, and the guest's cloud kernel has no PS/2 mouse driver. The
    /// keyboard stays the implicit PS/2 one (atkbd is built into that kernel).
    public var virtioTablet: Bool = true
    /// nil: no sound card.
    public var audio: Audio?
    /// QEMU's qemu-vdagent channel with clipboard sharing: the only way QEMU's VNC server
    /// exchanges clipboard text with its clients. The guest's spice-vdagent syncs it with X.
    public var clipboard: Bool = false
    public var metadata: Metadata?

    public init(
        name: String,
        type: HypervisorType,
        memoryMiB: Int,
        vcpus: Int,
        arch: String = "x86_64",
        machine: String = "pc",
        kernelBoot: KernelBoot? = nil,
        diskPath: String? = nil,
        extraDisks: [Disk] = [],
        cdrom: Cdrom? = nil,
        networkName: String? = nil,
        userNetwork: Bool = true,
        channel: Channel? = nil,
        serialLogPath: String? = nil,
        vncSocketPath: String? = nil,
        videoModel: String? = "vga",
        virtioTablet: Bool = true,
        audio: Audio? = nil,
        clipboard: Bool = false,
        metadata: Metadata? = nil
    ) {
        self.name = name
        self.type = type
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.arch = arch
        self.machine = machine
        self.kernelBoot = kernelBoot
        self.diskPath = diskPath
        self.extraDisks = extraDisks
        self.cdrom = cdrom
        self.networkName = networkName
        self.userNetwork = userNetwork
        self.channel = channel
        self.serialLogPath = serialLogPath
        self.vncSocketPath = vncSocketPath
        self.videoModel = videoModel
        self.virtioTablet = virtioTablet
        self.audio = audio
        self.clipboard = clipboard
        self.metadata = metadata
    }

    /// Renders the domain XML. Throws `XMLEscaping.Failure` for values XML cannot carry.
    public func xml() throws -> String {
        let a = XMLEscaping.attribute
        let t = XMLEscaping.text
        var x = "<domain type='\(type.rawValue)'>\n"
        x += "  <name>\(try t(name))</name><memory unit='MiB'>\(memoryMiB)</memory><vcpu>\(vcpus)</vcpu>\n"
        if let metadata {
            let prefix = try XMLEscaping.checkName(metadata.prefix)
            let element = try XMLEscaping.checkName(metadata.element)
            var el = "<\(prefix):\(element) xmlns:\(prefix)='\(try a(metadata.namespaceURI))'"
            for attribute in metadata.attributes {
                el += " \(try XMLEscaping.checkName(attribute.name))='\(try a(attribute.value))'"
            }
            x += "  <metadata>\(el)/></metadata>\n"
        }
        x += "  <os><type arch='\(try a(arch))' machine='\(try a(machine))'>hvm</type>"
        if let kernelBoot {
            x += "<kernel>\(try t(kernelBoot.kernelPath))</kernel>"
            if let initrd = kernelBoot.initrdPath { x += "<initrd>\(try t(initrd))</initrd>" }
            if let cmdline = kernelBoot.cmdline { x += "<cmdline>\(try t(cmdline))</cmdline>" }
        }
        x += "</os>\n"
        x += "  <features><acpi/></features>\n"
        // The appliance owns the VM lifecycle: any guest-initiated stop ends the domain.
        x += "  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\n"
        x += "  <devices>\n"
        if let diskPath {
            x += "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            x += "<source file='\(try a(diskPath))'/><target dev='vda' bus='virtio'/></disk>\n"
        }
        for disk in extraDisks {
            x += "    <disk type='file' device='disk'><driver name='qemu' type='\(try a(disk.format))'/>"
            x += "<source file='\(try a(disk.path))'/><target dev='\(try a(disk.target))' bus='virtio'/>"
            x += (disk.readOnly ? "<readonly/>" : "") + "</disk>\n"
        }
        if let cdrom {
            x += "    " + (try Self.cdromDeviceXML(mediaPath: cdrom.mediaPath)) + "\n"
        }
        if let networkName {
            x += "    <interface type='network'><source network='\(try a(networkName))'/><model type='virtio'/></interface>\n"
        } else if userNetwork {
            x += "    <interface type='user'><model type='virtio'/></interface>\n"
        }
        if let channel {
            x += "    <channel type='unix'><source mode='bind' path='\(try a(channel.socketPath))'/>"
            x += "<target type='virtio' name='\(try a(channel.targetName))'/></channel>\n"
        }
        if clipboard {
            // The port name is the one spice-vdagentd opens (/dev/virtio-ports/com.redhat.spice.0).
            x += "    <channel type='qemu-vdagent'><source><clipboard copypaste='yes'/></source>"
            x += "<target type='virtio' name='com.redhat.spice.0'/></channel>\n"
        }
        if let serialLogPath {
            x += "    <serial type='file'><source path='\(try a(serialLogPath))'/><target port='0'/></serial>\n"
        }
        if virtioTablet {
            x += "    <input type='tablet' bus='virtio'/>\n"
        }
        if let vncSocketPath {
            x += "    <graphics type='vnc' socket='\(try a(vncSocketPath))'/>\n"
        }
        if let videoModel {
            x += "    <video><model type='\(try a(videoModel))'/></video>\n"
        }
        if let audio {
            // HOST-NOTES.md: this pair routes the guest's HDA output into the host sink.
            x += "    <sound model='ich9'><audio id='1'/></sound>\n"
            x += "    <audio id='1' type='pulseaudio' serverName='\(try a(audio.serverSocketPath))'>"
            x += "<output name='\(try a(audio.sinkName))'/></audio>\n"
        }
        // No balloon: memory is fixed per VM and the device only adds guest-side work.
        x += "    <memballoon model='none'/>\n"
        x += "  </devices>\n"
        x += "</domain>\n"
        return x
    }

    /// The cdrom drive's device element, with `mediaPath` inserted or (nil) empty; also what
    /// `LibvirtClient.updateDevice` takes to change the media of a running domain.
    public static func cdromDeviceXML(mediaPath: String?) throws -> String {
        var x = "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
        if let mediaPath { x += "<source file='\(try XMLEscaping.attribute(mediaPath))'/>" }
        return x + "<target dev='hdc' bus='ide'/><readonly/></disk>"
    }
}
