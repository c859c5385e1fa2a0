import Foundation

/// A real `sssonector` process started by a test: it reads the bound ports from the host's
/// stdout, collects stderr, and is always stopped (SIGTERM, then SIGKILL) by `stop()`.
final class HostProcess: @unchecked Sendable {  // fields guarded by `lock`
    /// Set once, in `init`; implicitly unwrapped only so that the output handlers can capture
    /// `self` before the process they read exists.
    private(set) var process: ChildProcess!
    private let lock = NSLock()
    private var stdoutText = ""
    private var stderrText = ""
    private let listening = DispatchSemaphore(value: 0)
    private var seen = 0

    /// Runs `sssonector ARGS...` (for example `run file.json`); waits until `pipelines`
    /// listeners are up (0: don't wait).
    /// With `executable` and `prefix`, runs `executable prefix... ARGS...` instead (a shell that
    /// sets a limit, then execs the host).
    init(_ arguments: [String], pipelines: Int = 1, environment: [String: String] = [:],
         executable: String? = nil, prefix: [String] = []) throws {
        let (hostExecutable, hostArguments, hostEnvironment) = Self.command(prefix + arguments, environment: environment)
        process = try ChildProcess(executable ?? hostExecutable, hostArguments, environment: hostEnvironment,
            stdout: { [weak self] data in
                guard let self, !data.isEmpty else { return }
                self.lock.lock()
                self.stdoutText += String(decoding: data, as: UTF8.self)
                let count = self.stdoutText.components(separatedBy: " listening on ").count - 1
                let newly = count - self.seen
                self.seen = count
                self.lock.unlock()
                for _ in 0..<max(0, newly) { self.listening.signal() }
            },
            stderr: { [weak self] data in
                guard let self, !data.isEmpty else { return }
                self.lock.withLock { self.stderrText += String(decoding: data, as: UTF8.self) }
            })
        for _ in 0..<pipelines {
            if listening.wait(timeout: .now() + 30) == .timedOut || !process.isRunning && lock.withLock({ seen }) < pipelines {
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

    deinit { if process?.isRunning == true { stop() } }

    /// Runs `sssonector ARGS...` to completion; returns exit status, stdout and stderr.
    static func runToEnd(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let (executable, arguments, environment) = command(arguments, environment: environment)
        let finished = try ChildProcess.run(executable, arguments, environment: environment)
        return (finished.status, finished.stdout, finished.stderr)
    }
}

extension HostProcess {
    /// `sssonector ARGS...` with LD_BIND_NOW=1 (every symbol resolved at load). With
    /// SSSONECTOR_TEST_DATA_PATH set (`scripts/test.sh` runs the end-to-end suites once per
    /// data path), `run` gets `--data-path` with its value.
    static func command(_ arguments: [String], environment: [String: String]) -> (String, [String], [String: String]) {
        var arguments = arguments
        if let path = ProcessInfo.processInfo.environment["SSSONECTOR_TEST_DATA_PATH"], let run = arguments.firstIndex(of: "run") {
            arguments.insert(contentsOf: ["--data-path", path], at: run + 1)
        }
        var env = ProcessInfo.processInfo.environment
        env["LD_BIND_NOW"] = "1"
        for (k, v) in environment { env[k] = v }
        return (TestEnvironment.binPath("sssonector"), arguments, env)
    }
}

struct HostStartError: Error, CustomStringConvertible {
    let stderr: String
    var description: String { "sssonector did not start listening; stderr:\n\(stderr)" }
}
