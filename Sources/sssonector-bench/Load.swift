import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// The load generator (benchmarks/README.md).
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Drive load at a target: echo round trips, connection churn, or bulk streaming.")

    @Option(name: .customLong("target", withSingleDash: true), help: "host:port to load.")
    var target: TargetArgument

    @Option(name: .customLong("connections", withSingleDash: true), help: "Concurrent connections (or connection loops in connect mode).")
    var connections = 100

    @Option(name: .customLong("duration", withSingleDash: true), help: "How long to measure (e.g. 10s, 1m).")
    var duration = DurationArgument(argument: "10s")!

    @Option(name: .customLong("payload", withSingleDash: true), help: "Bytes per message (bulk: per write).")
    var payload = 2048

    @Option(name: .customLong("interval", withSingleDash: true), help: "Pause between messages per connection; 0 = as fast as possible, one in flight.")
    var interval = DurationArgument(argument: "0")!

    @Option(name: .customLong("warmup", withSingleDash: true), help: "Load before measuring starts.")
    var warmup = DurationArgument(argument: "2s")!

    @Option(name: .customLong("mode", withSingleDash: true), help: "echo, connect or bulk.")
    var mode: Mode = .echo

    @Option(name: .customLong("threads", withSingleDash: true), help: "Event loops of the load generator.")
    var threads = System.coreCount

    @Flag(name: [.customLong("json"), .customLong("json", withSingleDash: true)], help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(connections) else { throw ValidationError("-connections must be 1...100000") }
        guard (1...(64 << 20)).contains(payload) else { throw ValidationError("-payload must be 1...67108864") }
        guard duration.nanoseconds > 0 else { throw ValidationError("-duration must be > 0") }
        guard (1...256).contains(threads) else { throw ValidationError("-threads must be 1...256") }
    }

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        defer { try? group.syncShutdownGracefully() }
        let run = LoadRun(target: target, mode: mode, payload: payload, interval: interval.nanoseconds, group: group)
        let progress = isatty(1) != 0 && !json
        let result = try run.execute(connections: connections, warmup: warmup.nanoseconds,
                                     duration: duration.nanoseconds, progress: progress)
        print(json ? result.json : result.text)
    }
}
