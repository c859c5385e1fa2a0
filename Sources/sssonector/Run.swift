import ArgumentParser
import Foundation
import SSSonectorCore

/// `sssonector run FILE...`: runs pipelines until SIGINT or SIGTERM, then drains.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one or more pipelines until SIGINT/SIGTERM (graceful drain).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Pipeline files (JSON).")
    var files: [String]

    @Option(help: "Serve the admin API (stats, metrics, control) on host:port (loopback unless --admin-token).")
    var admin: String?

    @Option(help: "Bearer token the admin API requires (mandatory for a non-loopback --admin).")
    var adminToken: String?

    func validate() throws {
        if let admin, case .failure(let problem) = EndpointAddress.parse(admin, allowPortZero: true) {
            throw ValidationError("--admin: \(problem.message)")
        }
    }

    func run() throws {
        let logger = global.makeLogger()
        // Catch the signals before anyone can learn we are up (the listening lines), so a
        // SIGTERM sent right after them is never lost.
        let signals = SignalWaiter(for: [SIGINT, SIGTERM, SIGHUP])
        let host = Host(files: files, threads: global.threads, logger: logger, dataPath: global.dataPath)
        let bound: [(listener: String, address: String)]
        do {
            bound = try host.start()
        } catch {
            error.lines.forEach(printError)
            if case .invalid = error { throw SSSonectorCommand.invalidInput }
            throw SSSonectorCommand.runtimeFailure
        }
        if let admin, case .success(let address) = EndpointAddress.parse(admin, allowPortZero: true) {
            do {
                let bound = try host.startAdmin(address: address, token: adminToken)
                print("admin listening on \(bound)")
            } catch {
                error.lines.forEach(printError)
                host.shutdown()
                if case .invalid = error { throw SSSonectorCommand.invalidInput }
                throw SSSonectorCommand.runtimeFailure
            }
        }
        for (listener, address) in bound {
            // A stable line on stdout: scripts and tests read the bound port from it
            // ("pipeline NAME listening on ...", "relay NAME listening on ...").
            print("\(listener) listening on \(address)")
        }
        fflush(nil)  // stdout may be a pipe (tests, scripts): make the line visible now
        var signal = signals.wait()
        while signal == SIGHUP {
            logger.info("SIGHUP: reloading pipelines")
            host.reloadNow().forEach(printError)
            signal = signals.wait()
        }
        logger.info("stopping: draining open connections", metadata: ["signal": "\(signal)"])
        host.shutdown()
        logger.info("stopped")
    }
}

/// Turns SIGINT/SIGTERM into an orderly stop. The signals are blocked in this thread before
/// any other thread exists (the event loops inherit the mask), so one sent at any moment stays
/// pending until `wait()` takes it: never lost, never the default action.
final class SignalWaiter {
    private var set: sigset_t

    init(for signals: [Int32]) {
        set = Self.blockForWaiting(signals)
    }

    /// Blocks `signals` in the calling thread (and the threads it starts later).
    @discardableResult
    static func blockForWaiting(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return set
    }

    /// Blocks until one of the signals arrives; returns it.
    func wait() -> Int32 {
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }
}
