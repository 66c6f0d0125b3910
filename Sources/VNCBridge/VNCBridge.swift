/// The VNC bridge (WebSocket <-> RFB proxy, access tokens, view-only filter) arrives with its own
/// issue; the target exists now so that the package layout is final.
public enum VNCBridge {
    /// RFB version the bridge speaks towards the VM's VNC server.
    public static let rfbVersion = "RFB 003.008"
}
