import ArgumentParser
import ConfigValues
import Foundation
import SSSonectorCore

/// `sssonector-bench`: the load generator (default) and the echo/sink upstream (`echo`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sssonector-bench",
        abstract: "Load generator and echo upstream for measuring SSSonector (and anything else that relays TCP).",
        subcommands: [Load.self, Echo.self, Delay.self],
        defaultSubcommand: Load.self)
}

/// A duration with a unit ("250ms", "10s", "1m"), as pipeline files write them, or a plain
/// number of seconds.
struct DurationArgument: ExpressibleByArgument {
    let nanoseconds: UInt64
    init?(argument: String) {
        if let ns = Units.parseDuration(argument) {
            nanoseconds = ns
        } else if let seconds = Double(argument), seconds >= 0, seconds.isFinite {
            nanoseconds = UInt64(seconds * 1e9)
        } else {
            return nil
        }
    }

    /// The default shown by --help ("10s", not the struct's fields).
    var defaultValueDescription: String { Units.formatDuration(nanoseconds) }
}

/// "host:port" or "[v6]:port", as pipeline files write addresses.
struct TargetArgument: ExpressibleByArgument {
    let host: String
    let port: Int
    init?(argument: String) {
        guard case .success(let address) = EndpointAddress.parse(argument, allowPortZero: true) else { return nil }
        host = address.host
        port = address.port
    }
}

enum Mode: String, ExpressibleByArgument, CaseIterable { case echo, connect, bulk }
