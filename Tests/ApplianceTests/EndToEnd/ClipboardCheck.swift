import Foundation
import Testing

/// The viewer page's clipboard on a real browser VM (Chromium, spice-vdagent, QEMU's
/// qemu-vdagent channel): both ways for a control session, neither way for a view session.
/// BrowserWindowTests runs it on its worker's VM.
enum ClipboardCheck {
    /// The whole check on a locked browser VM showing one tab; it navigates that tab.
    static func check(_ run: ApplianceRun, _ site: TestSite, handle: String) async throws {
        let status = try await run.api.handleStatus(handle)
        let vm = try #require(status["vmid"] as? Int)
        let viewer = try #require((status["vm"] as? [String: Any])?["viewer"] as? [String: Any])
        let control = try #require(viewer["url"] as? String)
        let view = try #require(viewer["viewUrl"] as? String)
        let nonce = String(UUID().uuidString.prefix(8)).lowercased()
        let output = try await runScriptWithoutBlocking("clipboard_check.py", [
            control, view, run.appliance.baseURL, run.appliance.adminKey ?? "", "\(vm)", handle, site.guestBase, nonce,
        ])
        let seen = try lastLineJSON(output, from: "clipboard_check.py")
        print("clipboard: \(seen)")
        #expect(seen["error"] == nil, "\(seen)")
        #expect(seen["viewPanelShown"] as? Bool == false, "a view session has no clipboard panel")
        #expect(seen["controlPanelShown"] as? Bool == true, "a control session has one")
        // Exactly the text (no NUL, see viewer.html); the view session's text, sent after the
        // control session's, never reached the guest.
        #expect(seen["pasted"] as? String == "host-to-vm-\u{FC}-\(nonce)", "\(seen)")
        #expect(seen["panelGuestText"] as? String == "vm-to-host-\u{E9}-\(nonce)", "\(seen)")
        #expect(seen["panelText"] as? String == "vm-to-host-\u{E9}-\(nonce)", "\(seen)")
        // Connected throughout, yet given no clipboard: QEMU never learnt it could send one.
        #expect(seen["rogueState"] as? String == "connected", "\(seen)")
        #expect((seen["rogueClips"] as? [Any])?.isEmpty == true, "a view session received clipboard text: \(seen)")
        // Not even a notice that the clipboard changed, which the control session did get.
        #expect(seen["rogueServerCutTexts"] as? Int == 0, "a view session received clipboard messages: \(seen)")
        #expect((seen["controlServerCutTexts"] as? Int ?? 0) > 0, "\(seen)")
    }
}
