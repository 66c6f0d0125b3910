import FoundationXML
import Foundation
import Libvirt
import Testing

/// Against libvirt's built-in test driver: real libvirt code, no daemon, no guests.
/// `test:///default` is one shared in-process hypervisor with a running domain named "test".
@Suite struct TestDriverTests {
    static let uri = "test:///default"
    static let namespace = "https://vmcloud.example/ns/1"

    static func definition(name: String) -> DomainDefinition {
        DomainDefinition(
            name: name, type: .qemu, memoryMiB: 256, vcpus: 1,
            kernelBoot: .init(kernelPath: "/nonexistent/vmlinuz", cmdline: "console=ttyS0"),
            diskPath: "/nonexistent/overlay.qcow2",
            channel: .init(socketPath: "/nonexistent/agent.sock", targetName: "org.vmcloud.agent.0"),
            serialLogPath: "/nonexistent/console.log",
            vncSocketPath: "/nonexistent/vnc.sock",
            metadata: .init(
                namespaceURI: namespace, prefix: "vmcloud", element: "vm",
                attributes: [.init("appliance", "app-1"), .init("id", "vm-42")]
            )
        )
    }

    @Test func connectsAndListsTheDefaultDomain() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let domains = try await client.listDomains()
        let test = try #require(domains.first { $0.name == "test" })
        #expect(test.state == .running)
        #expect(test.id != nil)
        #expect(test.persistent)
        #expect(test.uuid.count == 36)
        await client.close()
    }

    @Test func transientDomainLifecycleMetadataAndEvents() async throws {
        let client = LibvirtClient(uri: Self.uri)
        let events = EventCollector(client.events)
        try await client.connect()
        let name = TestNames.unique("vmcloud-t")

        let created = try await client.createTransientDomain(xml: try Self.definition(name: name).xml())
        #expect(created.name == name)
        #expect(created.state == .running)
        #expect(!created.persistent)

        let listed = try await client.listDomains()
        #expect(listed.contains(created))

        let metadata = try #require(try await client.metadata(domain: name, namespaceURI: Self.namespace))
        let element = try XMLElement(xmlString: metadata)
        #expect(element.localName == "vm")
        #expect(element.attribute(forName: "appliance")?.stringValue == "app-1")
        #expect(element.attribute(forName: "id")?.stringValue == "vm-42")
        #expect(try await client.metadata(domain: name, namespaceURI: "urn:other") == nil)

        let xml = try await client.xmlDescription(domain: name)
        #expect(xml.contains("<name>\(name)</name>"))
        #expect(xml.contains("org.vmcloud.agent.0"))

        #expect(try await client.destroyDomain(name: name))
        #expect(try await client.destroyDomain(name: name) == false)
        #expect(try await !client.listDomains().contains { $0.name == name })

        let started = await events.lifecycle(.started, of: name, within: .seconds(10))
        let stopped = await events.lifecycle(.stopped, of: name, within: .seconds(10))
        #expect(started == .lifecycle(domain: name, uuid: created.uuid, event: .started, detail: 0))  // BOOTED
        #expect(stopped == .lifecycle(domain: name, uuid: created.uuid, event: .stopped, detail: 1))  // DESTROYED
        await client.close()
    }

    @Test func unknownDomainErrorCarriesLibvirtsMessage() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let name = TestNames.unique("no-such-domain")
        let error = try await #require(throws: LibvirtError.self) {
            try await client.xmlDescription(domain: name)
        }
        #expect(error.isNoSuchDomain)
        #expect(error.code == 42)  // VIR_ERR_NO_DOMAIN
        // The test driver's wording; the qemu driver adds "no domain with matching name ...".
        #expect(error.message.hasPrefix("Domain not found"))
        #expect(error.description.contains(name))  // the operation names the domain
        await #expect(throws: LibvirtError.self) {
            try await client.metadata(domain: name, namespaceURI: Self.namespace)
        }
        // The failure must not linger in libvirt's per-thread error slot.
        #expect(try await client.listDomains().contains { $0.name == "test" })
        await client.close()
    }

    @Test func invalidXMLIsRejectedWithLibvirtsMessage() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let error = try await #require(throws: LibvirtError.self) {
            try await client.createTransientDomain(xml: "<domain type='qemu'><name>x</name>")
        }
        #expect(!error.message.isEmpty)
        await client.close()
    }

    /// The escaped XML goes through libvirt's parser and comes back with the exact values.
    @Test func hostileNameAndPathsRoundTripThroughLibvirt() async throws {
        let client = LibvirtClient(uri: Self.uri)
        try await client.connect()
        let name = TestNames.unique("evil'\"<b>&amp;")
        var def = Self.definition(name: name)
        def.serialLogPath = "/tmp/a'b\"c<d>&e.log"
        def.metadata?.attributes = [.init("appliance", "<'&\">"), .init("id", "1")]
        let created = try await client.createTransientDomain(xml: try def.xml())
        #expect(created.name == name)

        let doc = try XMLDocument(xmlString: try await client.xmlDescription(domain: name), options: [])
        #expect(try doc.nodes(forXPath: "/domain/name").map(\.stringValue) == [name])
        #expect(try doc.nodes(forXPath: "/domain/devices/serial/source/@path").map(\.stringValue) == ["/tmp/a'b\"c<d>&e.log"])
        let metadata = try #require(try await client.metadata(domain: name, namespaceURI: Self.namespace))
        #expect(try XMLElement(xmlString: metadata).attribute(forName: "appliance")?.stringValue == "<'&\">")
        #expect(try await client.destroyDomain(name: name))
        await client.close()
    }

    @Test func operationsBeforeConnectAndAfterCloseFailClearly() async throws {
        let client = LibvirtClient(uri: Self.uri)
        await #expect(throws: LibvirtClientError.notConnected) { try await client.listDomains() }
        try await client.connect()
        await client.close()
        await #expect(throws: LibvirtClientError.closed) { try await client.listDomains() }
        await #expect(throws: LibvirtClientError.closed) { try await client.connect() }
        // close() finishes the event stream.
        for await _ in client.events {}
    }

    @Test func connectFailureCarriesLibvirtsError() async throws {
        let client = LibvirtClient(uri: "test:///nonexistent/path/to/config.xml")
        await #expect(throws: LibvirtError.self) { try await client.connect() }
    }

    @Test func deinitWithoutCloseIsSafe() async throws {
        var client: LibvirtClient? = LibvirtClient(uri: Self.uri)
        try await client?.connect()
        _ = try await client?.listDomains()
        client = nil
        // A fresh client still works after the old one's teardown ran on its queue.
        let other = LibvirtClient(uri: Self.uri)
        try await other.connect()
        #expect(try await other.listDomains().contains { $0.name == "test" })
        await other.close()
    }
}
