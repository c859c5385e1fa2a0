import ConfigValues
import Foundation
import Glibc

/// Debian's headless Chromium with one page, driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: the browser reads JSON commands on descriptor 3 and writes its
/// answers and events on 4, each message ended by a NUL). Every call waits with a deadline;
/// `close()` always ends the browser (Browser.close, then SIGKILL) and removes its profile.
final class HeadlessBrowser {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let executable = "/usr/bin/chromium"

    private var browser: ChildProcess?
    private let commands: Int32
    private let answers: Int32
    private var received: [UInt8] = []
    private var nextID = 1
    private var session = ""
    private let profile = TestEnvironment.temporaryDirectory()
    private var closed = false

    /// Starts the browser with an empty page of `width` × `height` CSS pixels.
    init(width: Int = 1400, height: Int = 1100) throws {
        guard access(Self.executable, X_OK) == 0 else {
            throw Failure(description: "\(Self.executable) is missing: run scripts/install-dependencies.sh (apt-get install chromium)")
        }
        let toBrowser = try ChildProcess.pipeClosedOnExec(), fromBrowser = try ChildProcess.pipeClosedOnExec()
        commands = toBrowser[1]
        answers = fromBrowser[0]
        defer { Glibc.close(toBrowser[0]); Glibc.close(fromBrowser[1]) }
        // Headless, as root (no sandbox), and quiet: nothing reaches for the network on its own.
        let arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            "--user-data-dir=\(profile)", "--window-size=\(width),\(height)", "--hide-scrollbars",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            "--disable-domain-reliability", "--disable-features=Translate,OptimizationHints,MediaRouter",
            "about:blank",
        ]
        do {
            // Nothing else of this process reaches the browser (ChildProcess closes the rest).
            browser = try ChildProcess(Self.executable, arguments, placing: [(toBrowser[0], 3), (fromBrowser[1], 4)])
        } catch {
            close()  // the pipes, once: deinit (which runs for a class whose init throws) finds it closed
            throw error
        }
        do {
            let target = try send("Target.createTarget", ["url": "about:blank"])
            guard let targetID = target["targetId"] as? String else { throw Failure(description: "no target: \(target)") }
            let attached = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true])
            guard let id = attached["sessionId"] as? String else { throw Failure(description: "no session: \(attached)") }
            session = id
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Loads `url` in the page.
    func open(_ url: String) throws {
        _ = try send("Page.navigate", ["url": url], inPage: true)
    }

    /// Evaluates `expression` in the page; returns its value as JSON text (a promise is awaited).
    func evaluate(_ expression: String, timeout: Double = 20) throws -> String {
        let script = "(async () => JSON.stringify(await (\(expression))))()"
        let result = try send("Runtime.evaluate", ["expression": script, "awaitPromise": true, "returnByValue": true],
                              inPage: true, timeout: timeout)
        if let exception = result["exceptionDetails"] { throw Failure(description: "\(expression): \(exception)") }
        guard let value = (result["result"] as? [String: Any])?["value"] as? String else {
            throw Failure(description: "\(expression): no value in \(result)")
        }
        return value
    }

    /// Evaluates `expression` as JSON (`JSONValue`).
    func json(_ expression: String) throws -> JSONValue {
        try JSONValue.parse(try evaluate(expression))
    }

    /// Waits in the page until `condition` (a JS expression) is true; false when `seconds` pass.
    func waitFor(_ condition: String, seconds: Double = 20) throws -> Bool {
        let poll = """
        new Promise((resolve) => {
          const deadline = Date.now() + \(Int(seconds * 1000));
          const check = () => {
            let ok = false;
            try { ok = !!(\(condition)); } catch (e) { ok = false; }
            if (ok || Date.now() > deadline) resolve(ok); else setTimeout(check, 25);
          };
          check();
        })
        """
        return try evaluate(poll, timeout: seconds + 10) == "true"
    }

    /// Writes a PNG of the whole page to `path`.
    func screenshot(to path: String) throws {
        let shot = try send("Page.captureScreenshot", ["format": "png", "captureBeyondViewport": true], inPage: true)
        guard let base64 = shot["data"] as? String, let png = Data(base64Encoded: base64) else {
            throw Failure(description: "no screenshot data")
        }
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// Ends the browser (politely, then SIGKILL after 5 s) and removes its profile.
    func close() {
        guard !closed else { return }
        closed = true
        if let browser {
            _ = try? send("Browser.close", [:], timeout: 5)
            let deadline = Date().addingTimeInterval(5)
            while browser.isRunning && Date() < deadline { usleep(20_000) }
            if browser.isRunning { kill(browser.processIdentifier, SIGKILL) }
            browser.waitUntilExit()
        }
        Glibc.close(commands)
        Glibc.close(answers)
        try? FileManager.default.removeItem(atPath: profile)
    }

    // MARK: the protocol

    /// Sends one command (to the page's session with `inPage`) and waits for its answer.
    private func send(_ method: String, _ params: [String: Any], inPage: Bool = false,
                      timeout: Double = 20) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if inPage { message["sessionId"] = session }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: message))
        bytes.append(0)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(commands, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "\(method): the browser's pipe is closed") }
            offset += written
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while let end = received.firstIndex(of: 0) {
                let text = Data(received[..<end])
                received.removeSubrange(...end)
                guard let answer = try JSONSerialization.jsonObject(with: text) as? [String: Any],
                      answer["id"] as? Int == id else { continue }  // an event, or another command's answer
                if let error = answer["error"] { throw Failure(description: "\(method): \(error)") }
                return answer["result"] as? [String: Any] ?? [:]
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw Failure(description: "\(method): no answer in \(timeout) s") }
            var poller = pollfd(fd: answers, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min(left, 1) * 1000) + 1) >= 0 || errno == EINTR else {
                throw Failure(description: "\(method): poll errno \(errno)")
            }
            guard poller.revents != 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(answers, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure(description: "\(method): the browser closed its pipe") }
            received += chunk[..<count]
        }
    }
}
