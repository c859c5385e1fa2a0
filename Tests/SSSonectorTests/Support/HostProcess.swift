import Foundation
import Synchronization

/// A real `sssonector` process started by a test: it reads the bound ports from the host's
/// stdout, collects stderr, and is always stopped (SIGTERM, then SIGKILL) by `stop()`.
final class HostProcess: @unchecked Sendable {  // fields guarded by `lock`
    let process: Process
    private let lock = NSLock()
    private var stdoutText = ""
    private var stderrText = ""
    private let listening = DispatchSemaphore(value: 0)
    private var expected = 0
    private var seen = 0

    /// Runs `sssonector ARGS...` (for example `run file.json`); waits until `pipelines`
    /// listeners are up (0: don't wait).
    /// With `executable` and `prefix`, runs `executable prefix... ARGS...` instead (a shell that
    /// sets a limit, then execs the host).
    init(_ arguments: [String], pipelines: Int = 1, environment: [String: String] = [:],
         executable: String? = nil, prefix: [String] = []) throws {
        let (process, out, err) = Self.makeProcess(prefix + arguments, environment: environment)
        if let executable { process.executableURL = URL(fileURLWithPath: executable) }
        self.process = process
        expected = pipelines
        // At the end of the output, each handler removes itself: Foundation calls a handler
        // again and again with no data once a pipe is at its end, a thread spinning until the
        // handle goes.
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil }
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.stdoutText += String(decoding: data, as: UTF8.self)
            let count = self.stdoutText.components(separatedBy: " listening on ").count - 1
            let newly = count - self.seen
            self.seen = count
            self.lock.unlock()
            for _ in 0..<max(0, newly) { self.listening.signal() }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil }
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.stderrText += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
        for _ in 0..<pipelines {
            if listening.wait(timeout: .now() + 30) == .timedOut || !process.isRunning && seen < pipelines {
                stop()
                throw HostStartError(stderr: stderr)
            }
        }
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return stdoutText }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return stderrText }

    /// The port pipeline `name` listens on.
    func port(of name: String) -> Int? { port(line: "pipeline \(name) listening on ") }

    /// The port relay file `name` takes connectors on.
    func relayPort(of name: String) -> Int? { port(line: "relay \(name) listening on ") }

    /// The admin API's port (with `--admin`).
    var adminPort: Int? { port(line: "admin listening on ") }

    private func port(line prefix: String) -> Int? {
        for line in stdout.split(separator: "\n") where line.hasPrefix(prefix) {
            return line.split(separator: ":").last.flatMap { Int($0) }
        }
        return nil
    }

    /// Sends SIGTERM and waits (up to 15 s, then SIGKILL). Returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(15)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { stop() } }

    /// Runs `sssonector ARGS...` to completion; returns exit status, stdout and stderr.
    static func runToEnd(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let (p, out, err) = makeProcess(arguments, environment: environment)
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}

extension HostProcess {
    /// `sssonector ARGS...` with LD_BIND_NOW=1 (every symbol resolved at load) and pipes. With
    /// SSSONECTOR_TEST_DATA_PATH set (`scripts/test.sh` runs the end-to-end suites once per
    /// data path), `run` gets `--data-path` with its value.
    static func makeProcess(_ arguments: [String], environment: [String: String]) -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnvironment.binPath("sssonector"))
        var arguments = arguments
        if let path = ProcessInfo.processInfo.environment["SSSONECTOR_TEST_DATA_PATH"], let run = arguments.firstIndex(of: "run") {
            arguments.insert(contentsOf: ["--data-path", path], at: run + 1)
        }
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["LD_BIND_NOW"] = "1"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        return (p, out, err)
    }
}

struct HostStartError: Error, CustomStringConvertible {
    let stderr: String
    var description: String { "sssonector did not start listening; stderr:\n\(stderr)" }
}
