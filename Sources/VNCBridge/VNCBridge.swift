/// The VNC bridge (WebSocket <-> RFB proxy, access tokens, view-only filter). So far it holds the
/// client-to-server stream filter (`RFBClientStreamFilter`); the proxy itself comes later.
public enum VNCBridge {
    /// RFB version the bridge speaks towards the VM's VNC server.
    public static let rfbVersion = "RFB 003.008"
}
