import FoundationXML
import Foundation
import Libvirt
import Testing

@Suite struct DomainDefinitionTests {
    static func agentTestDefinition(dir: String = "DIR", name: String = "agenttest") -> DomainDefinition {
        DomainDefinition(
            name: name, type: .qemu, memoryMiB: 256, vcpus: 1,
            kernelBoot: .init(kernelPath: "K", initrdPath: "I", cmdline: "C"),
            diskPath: "\(dir)/overlay.qcow2",
            channel: .init(socketPath: "\(dir)/agent.sock", targetName: "org.vmcloud.agent.0"),
            serialLogPath: "\(dir)/console.log",
            vncSocketPath: "\(dir)/vnc.sock",
            videoModel: "vga",
            metadata: .init(
                namespaceURI: "https://vmcloud.example/ns/1", prefix: "vmcloud", element: "vm",
                attributes: [.init("appliance", "INSTANCE"), .init("id", "VMID")]
            )
        )
    }

    @Test func rendersTheTargetShape() throws {
        let xml = try Self.agentTestDefinition().xml()
        let expected = """
            <domain type='qemu'>
              <name>agenttest</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
              <metadata><vmcloud:vm xmlns:vmcloud='https://vmcloud.example/ns/1' appliance='INSTANCE' id='VMID'/></metadata>
              <os><type arch='x86_64' machine='pc'>hvm</type><kernel>K</kernel><initrd>I</initrd><cmdline>C</cmdline></os>
              <features><acpi/></features>
              <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
              <devices>
                <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='DIR/overlay.qcow2'/><target dev='vda' bus='virtio'/></disk>
                <interface type='user'><model type='virtio'/></interface>
                <channel type='unix'><source mode='bind' path='DIR/agent.sock'/><target type='virtio' name='org.vmcloud.agent.0'/></channel>
                <serial type='file'><source path='DIR/console.log'/><target port='0'/></serial>
                <input type='tablet' bus='virtio'/>
                <graphics type='vnc' socket='DIR/vnc.sock'/>
                <video><model type='vga'/></video>
                <memballoon model='none'/>
              </devices>
            </domain>

            """
        #expect(xml == expected)
    }

    @Test func optionalPartsAreOmitted() throws {
        let xml = try DomainDefinition(
            name: "bare", type: .kvm, memoryMiB: 64, vcpus: 2, userNetwork: false, videoModel: nil,
            virtioTablet: false
        ).xml()
        #expect(xml.contains("<domain type='kvm'>"))
        #expect(xml.contains("<vcpu>2</vcpu>"))
        for absent in ["<kernel>", "<disk", "<interface", "<channel", "<serial", "<input", "<graphics", "<video", "<metadata", "<sound", "<audio"] {
            #expect(!xml.contains(absent), "\(absent) should be omitted")
        }
    }

    @Test func rendersTheSoundCardIntoAPulseAudioSink() throws {
        var definition = DomainDefinition(name: "sound", type: .qemu, memoryMiB: 64, vcpus: 1)
        definition.audio = .init(serverSocketPath: "/run/vmcloud/pulse.sock", sinkName: "vmcloud-vm7")
        let xml = try definition.xml()
        #expect(xml.contains("    <sound model='ich9'><audio id='1'/></sound>\n"))
        #expect(xml.contains("    <audio id='1' type='pulseaudio' serverName='/run/vmcloud/pulse.sock'><output name='vmcloud-vm7'/></audio>\n"))
    }

    /// QEMU's VNC clipboard needs the qemu-vdagent channel on the port spice-vdagentd opens.
    @Test func rendersTheClipboardChannel() throws {
        var definition = Self.agentTestDefinition()
        #expect(!(try definition.xml()).contains("qemu-vdagent"), "off unless asked for")
        definition.clipboard = true
        let xml = try definition.xml()
        #expect(xml.contains("    <channel type='qemu-vdagent'><source><clipboard copypaste='yes'/></source><target type='virtio' name='com.redhat.spice.0'/></channel>\n"))
        let doc = try XMLDocument(xmlString: xml, options: [])
        #expect(try doc.nodes(forXPath: "/domain/devices/channel[@type='qemu-vdagent']/source/clipboard/@copypaste").map { $0.stringValue } == ["yes"])
        #expect(try doc.nodes(forXPath: "/domain/devices/channel/target/@name").map { $0.stringValue } == ["org.vmcloud.agent.0", "com.redhat.spice.0"])
    }

    /// Hostile values must survive a real XML parser byte for byte and not inject elements.
    @Test func escapesHostileValues() throws {
        let hostileName = "x'y\"z<a>&amp;</name><name>evil"
        let hostilePath = "/tmp/a'b\"c<d>&e\tf\ng"
        var def = Self.agentTestDefinition(dir: hostilePath, name: hostileName)
        def.kernelBoot = .init(kernelPath: "/k&<>", initrdPath: nil, cmdline: "console=ttyS0 x='1' y=\"<2>\"")
        def.metadata?.attributes = [.init("appliance", "a'\"<&>\r\n"), .init("id", "]]>")]
        let xml = try def.xml()

        let doc = try XMLDocument(xmlString: xml, options: [])
        func values(_ xpath: String) throws -> [String] {
            try doc.nodes(forXPath: xpath).map { $0.stringValue ?? "" }
        }
        #expect(try values("/domain/name") == [hostileName])
        #expect(try values("/domain/os/kernel") == ["/k&<>"])
        #expect(try values("/domain/os/cmdline") == ["console=ttyS0 x='1' y=\"<2>\""])
        #expect(try values("/domain/devices/disk/source/@file") == ["\(hostilePath)/overlay.qcow2"])
        #expect(try values("/domain/devices/channel/source/@path") == ["\(hostilePath)/agent.sock"])
        #expect(try values("/domain/devices/serial/source/@path") == ["\(hostilePath)/console.log"])
        #expect(try values("/domain/devices/graphics/@socket") == ["\(hostilePath)/vnc.sock"])
        let vm = try #require(doc.rootElement()?.elements(forName: "metadata").first?.children?.first as? XMLElement)
        #expect(vm.attribute(forName: "appliance")?.stringValue == "a'\"<&>\r\n")
        #expect(vm.attribute(forName: "id")?.stringValue == "]]>")
        #expect(vm.uri == "https://vmcloud.example/ns/1")
    }

    @Test func rejectsUnrepresentableCharacters() {
        #expect(throws: XMLEscaping.Failure.self) {
            try DomainDefinition(name: "nul\u{0}byte", type: .qemu, memoryMiB: 64, vcpus: 1).xml()
        }
        #expect(throws: XMLEscaping.Failure.self) {
            var def = DomainDefinition(name: "ok", type: .qemu, memoryMiB: 64, vcpus: 1)
            def.serialLogPath = "/tmp/\u{1B}[31m"
            return try def.xml()
        }
    }

    @Test func rejectsInvalidXMLNames() {
        for bad in ["", "1abc", "a b", "x:y", "a'b", "a>b"] {
            var def = Self.agentTestDefinition()
            def.metadata?.attributes = [.init(bad, "v")]
            #expect(throws: XMLEscaping.Failure.invalidName(bad)) { try def.xml() }
        }
        var def = Self.agentTestDefinition()
        def.metadata?.prefix = "p'><evil/"
        #expect(throws: XMLEscaping.Failure.self) { try def.xml() }
    }
}
