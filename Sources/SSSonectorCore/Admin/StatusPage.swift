import Crypto
import Foundation

/// The admin port's live status page, `GET /` (docs/operations.md, "Status page"): one
/// self-contained HTML document, with no external asset, that polls `/stats` and sends operator
/// actions to the admin API's own endpoints.
///
/// The document holds no data and no secret, so it is served without the bearer token; the
/// script asks for the token when `/stats` answers 401 and sends it with every request. The
/// content security policy allows exactly this page's own script and style (by hash) and
/// requests to this origin only.
enum StatusPage {
    /// The answer to `GET /`, built once.
    static let response: AdminResponse = {
        let style = StatusPageMarkup.style
        let script = StatusPageScript.data + StatusPageScript.actions
        let html = StatusPageMarkup.document(style: style, script: script)
        let policy = [
            "default-src 'none'",
            "script-src '\(sha256(script))'",
            "style-src '\(sha256(style))'",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ].joined(separator: "; ")
        return AdminResponse(status: .ok, contentType: "text/html; charset=utf-8", body: html, headers: [
            ("content-security-policy", policy),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ])
    }()

    /// A CSP source expression for an inline element's exact text.
    private static func sha256(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Data(text.utf8))).base64EncodedString()
    }
}
