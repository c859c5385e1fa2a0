import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SSSonectorCore
import SSSonectorDemo

/// `sssonector-bench echo -listen ADDR`: the upstream for load runs.
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve as the upstream: echo every byte back, or sink (discard) them for bulk runs.")

    @Option(name: .customLong("listen", withSingleDash: true), help: "host:port (port 0: any free port).")
    var listen: TargetArgument

    @Option(name: .customLong("mode", withSingleDash: true), help: "echo or sink.")
    var mode: EchoServer.Mode = .echo

    @Option(name: .customLong("threads", withSingleDash: true), help: "Event loops.")
    var threads = System.coreCount

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let server = try EchoServer.startBlocking(host: listen.host, port: listen.port, mode: mode, group: group)
        print("\(mode.rawValue) listening on \(listen.host):\(server.port)")
        fflush(nil)
        try server.channel.closeFuture.wait()
    }
}

extension EchoServer.Mode: ExpressibleByArgument {}
