import ArgumentParser
import Dispatch
import Foundation
import SSSonectorCore

/// `sssonector run FILE...`: runs pipelines until SIGINT or SIGTERM, then drains.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one or more pipelines until SIGINT/SIGTERM (graceful drain).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Pipeline files (JSON).")
    var files: [String]

    func run() throws {
        let logger = global.makeLogger()
        let host = Host(files: files, threads: global.threads, logger: logger)
        let bound: [(pipeline: String, address: String)]
        do {
            bound = try host.start()
        } catch {
            error.lines.forEach(printError)
            if case .invalid = error { throw SSSonectorCommand.invalidInput }
            throw SSSonectorCommand.runtimeFailure
        }
        for (pipeline, address) in bound {
            // A stable line on stdout: scripts and tests read the bound port from it.
            print("pipeline \(pipeline) listening on \(address)")
        }
        fflush(nil)  // stdout may be a pipe (tests, scripts): make the line visible now
        let signal = SignalWaiter.wait(for: [SIGINT, SIGTERM])
        logger.info("stopping: draining open connections", metadata: ["signal": "\(signal)"])
        host.shutdown()
        logger.info("stopped")
    }
}

/// Blocks until one of the signals arrives; returns it.
enum SignalWaiter {
    static func wait(for signals: [Int32]) -> Int32 {
        let semaphore = DispatchSemaphore(value: 0)
        let received = SignalBox()
        let queue = DispatchQueue(label: "sssonector.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                received.set(sig)
                semaphore.signal()
            }
            source.resume()
            sources.append(source)
        }
        semaphore.wait()
        sources.forEach { $0.cancel() }
        return received.value
    }
}

import Synchronization

final class SignalBox: Sendable {
    private let storage = Atomic<Int32>(0)
    func set(_ value: Int32) { storage.store(value, ordering: .relaxed) }
    var value: Int32 { storage.load(ordering: .relaxed) }
}
