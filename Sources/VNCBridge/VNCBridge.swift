/// The VNC bridge: relays a browser's WebSocket (noVNC) to a VM's VNC unix socket
/// (`RFBRelay`), filtering the client's input on view-only sessions (`RFBClientStreamFilter`),
/// and keeps track of open sessions so that they can be closed when access ends
/// (`BridgeSessions`). Access control itself (tokens, handles) belongs to the appliance.
public enum VNCBridge {
    /// RFB version the bridge speaks towards the VM's VNC server.
    public static let rfbVersion = "RFB 003.008"
    /// WebSocket close code sent when the session's access was revoked (released handle, lost
    /// VM). 4000-4999 are for applications (RFC 6455 §7.4.2); the viewer page does not
    /// reconnect on it.
    public static let revokedCloseCode: UInt16 = 4001
}
