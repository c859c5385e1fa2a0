import ArgumentParser
import Foundation

/// `sssonector-bench`: the load generator (default) and the echo/sink upstream (`echo`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sssonector-bench",
        abstract: "Load generator and echo upstream for measuring SSSonector (and anything else that relays TCP).",
        subcommands: [Load.self, Echo.self],
        defaultSubcommand: Load.self)
}

/// Parses "250ms", "10s", "1m" (or a plain number of seconds).
struct DurationArgument: ExpressibleByArgument {
    let nanoseconds: UInt64
    init?(argument: String) {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (unit, scale) in units where argument.hasSuffix(unit) {
            if let v = Double(argument.dropLast(unit.count)), v >= 0, !argument.dropLast(unit.count).hasSuffix("m") {
                nanoseconds = UInt64(v * scale)
                return
            }
        }
        guard let seconds = Double(argument), seconds >= 0 else { return nil }
        nanoseconds = UInt64(seconds * 1e9)
    }
    var seconds: Double { Double(nanoseconds) / 1e9 }
}

/// "host:port" or "[v6]:port".
struct TargetArgument: ExpressibleByArgument {
    let host: String
    let port: Int
    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}

enum Mode: String, ExpressibleByArgument, CaseIterable { case echo, connect, bulk }
