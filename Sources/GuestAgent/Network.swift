// The guest's address, reported in hello/state so the host can reach services in the VM.
import Glibc

/// First IPv4 address of an up, non-loopback interface (getifaddrs order), or nil when DHCP
/// has not configured one yet. Read fresh on every call: the lease may arrive late.
func firstIPv4Address() -> String? {
    var head: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&head) == 0 else { return nil }
    defer { freeifaddrs(head) }
    var cursor = head
    while let ifa = cursor {
        cursor = ifa.pointee.ifa_next
        guard let addr = ifa.pointee.ifa_addr, Int32(addr.pointee.sa_family) == AF_INET else { continue }
        let flags = ifa.pointee.ifa_flags
        guard flags & UInt32(IFF_UP) != 0, flags & UInt32(IFF_LOOPBACK) == 0 else { continue }
        var sin = UnsafeRawPointer(addr).loadUnaligned(as: sockaddr_in.self)
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &sin.sin_addr, &text, socklen_t(text.count)) != nil else { continue }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return nil
}
