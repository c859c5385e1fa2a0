import ArgumentParser
import Foundation
import NIOPosix
import SSSonectorCore
import Synchronization
import SSSonectorDemo

/// `sssonector demo`: a self-contained demonstration on loopback. It starts echo upstreams at
/// the addresses the pipeline names, runs the pipeline, drives traffic through it, checks
/// every echoed byte and prints live figures.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline on loopback with local echo upstreams and traffic; print live stats.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "The pipeline to demonstrate.")
    var pipeline = "pipelines/demo.json"

    @Option(help: "How long to drive traffic, in seconds.")
    var seconds = 5

    @Option(help: "Concurrent clients.")
    var clients = 8

    @Option(help: "Bytes per message.")
    var payload = 16384

    func validate() throws {
        guard (1...3600).contains(seconds) else { throw ValidationError("--seconds must be 1...3600") }
        guard (1...512).contains(clients) else { throw ValidationError("--clients must be 1...512") }
        guard (1...(16 << 20)).contains(payload) else { throw ValidationError("--payload must be 1...16777216") }
    }

    func run() throws {
        let logger = global.makeLogger()
        let config: PipelineConfig
        switch PipelineDecoder.load(file: pipeline) {
        case .success(let c): config = c
        case .failure(let errors):
            errors.lines.forEach(printError)
            throw SSSonectorCommand.invalidInput
        }
        for upstream in config.upstreams where !["127.0.0.1", "::1", "localhost"].contains(upstream.address.host) {
            printError("\(pipeline): upstreams: the demo starts echo services on loopback only; \(upstream.name) is at \(upstream.address)")
            throw SSSonectorCommand.invalidInput
        }
        let echoGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? echoGroup.syncShutdownGracefully() }
        var echoes: [EchoServer] = []
        for upstream in config.upstreams {
            let host = upstream.address.host == "localhost" ? "127.0.0.1" : upstream.address.host
            guard let echo = try? blockingAwait({ try await EchoServer.start(host: host, port: upstream.address.port, group: echoGroup) }) else {
                printError("\(pipeline): cannot start the echo upstream at \(upstream.address) (port in use?)")
                throw SSSonectorCommand.runtimeFailure
            }
            print("echo upstream \(upstream.name) on \(upstream.address)")
            echoes.append(echo)
        }
        let host = Host(files: [pipeline], threads: global.threads, logger: logger, dataPath: global.dataPath)
        let bound: [(listener: String, address: String)]
        do {
            bound = try host.start()
        } catch {
            error.lines.forEach(printError)
            throw error.isInvalid ? SSSonectorCommand.invalidInput : SSSonectorCommand.runtimeFailure
        }
        defer { host.shutdown() }
        let (listener, address) = bound[0]
        print("\(listener) listening on \(address); \(clients) clients sending \(payload)-byte messages for \(seconds)s")
        let target = try EndpointAddress.parse(address, allowPortZero: false).get()
        let report = DemoTraffic.drive(host: target.host, port: target.port, clients: clients, payload: payload,
                                       seconds: seconds) { elapsed, messages, bytes in
            let runtime = host.runtimes[0]
            let c = runtime.counters
            print(String(format: "%3ds  messages %8d  echoed %9.1f MiB  connections: active %lld total %llu rejected %@",
                         elapsed, messages, Double(bytes) / 1_048_576, Int64(bitPattern: c.figures[.active]),
                         c.figures[.total], "\(c.rejectedByReason)"))
        }
        for runtime in host.runtimes {
            for stage in runtime.chain.stages {
                if let json = stage.statsJSON() { print("stage \(stage.name): \(json)") }
            }
        }
        print("done: \(report.messages) messages, \(report.bytes) bytes echoed intact, \(report.failures) failures")
        if report.corrupted { throw SSSonectorCommand.runtimeFailure }
    }
}

extension HostError {
    var isInvalid: Bool { if case .invalid = self { true } else { false } }
}
