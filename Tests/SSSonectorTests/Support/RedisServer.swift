import Foundation
import Glibc

/// A real `redis-server` (Debian's package) for one test: it listens on a Unix socket in a
/// fresh folder (no TCP port at all, so tests never collide), keeps nothing on disk, and is
/// stopped by `stop()` or when this object goes. Without redis-server the test fails with the
/// command that installs it: it never skips.
final class RedisServer: @unchecked Sendable {  // one test drives it
    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    static let executable = "/usr/bin/redis-server"
    static let cliExecutable = "/usr/bin/redis-cli"
    let socket: String
    private let directory: String
    private var process: ChildProcess?

    init() throws {
        directory = TestEnvironment.temporaryDirectory()
        socket = directory + "/redis.sock"
        try start()
    }

    deinit { stop() }

    /// The `shared.redis` value that names this server.
    var endpoint: String { "unix:\(socket)" }

    /// Starts (or restarts) the server on the same socket; returns once it answers PING.
    func start() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw Missing(description: "\(Self.executable) is missing: run scripts/install-dependencies.sh (apt-get install redis-server)")
        }
        let p = try ChildProcess(Self.executable, ["--port", "0", "--unixsocket", socket, "--unixsocketperm", "700",
                                                   "--save", "", "--appendonly", "no", "--dir", directory, "--loglevel", "warning"])
        process = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if cli("PING") == "PONG" { return }
            guard p.isRunning else { break }
            usleep(20_000)
        }
        stop()
        throw Missing(description: "redis-server did not answer on \(socket)")
    }

    /// Stops the server at once (SIGKILL: it holds nothing to save, and the test process's
    /// blocked SIGTERM is inherited by what it spawns, so redis-server would never see one).
    func stop() {
        guard let p = process else { return }
        process = nil
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        unlink(socket)
    }

    /// Runs one command with redis-cli; its output without the trailing newline.
    @discardableResult
    func cli(_ arguments: String...) -> String {
        guard let finished = try? ChildProcess.run(Self.cliExecutable, ["-s", socket] + arguments) else { return "" }
        return finished.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `DBSIZE`: keys held now.
    var keyCount: Int { Int(cli("DBSIZE")) ?? -1 }

    /// Calls of `command` so far (`INFO commandstats`), e.g. "evalsha".
    func calls(of command: String) -> Int {
        for line in cli("INFO", "commandstats").split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_\(command):calls=") {
            let value = line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }
            return Int(value) ?? 0
        }
        return 0
    }
}
