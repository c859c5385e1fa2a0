import ArgumentParser
import NIOPosix

/// `sssonector-bench delay -listen ADDR -target ADDR -rtt 20ms`: a relay that adds a round trip
/// between a proxy and its upstream, in user space (see `DelayRelay`).
struct Delay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relay TCP to a target with an added round-trip time (a user-space stand-in for netem).")

    @Option(name: .customLong("listen", withSingleDash: true), help: "host:port (port 0: any free port).")
    var listen: TargetArgument

    @Option(name: .customLong("target", withSingleDash: true), help: "host:port to relay to.")
    var target: TargetArgument

    @Option(name: .customLong("rtt", withSingleDash: true), help: "Round-trip time to add.")
    var roundTrip = DurationArgument(argument: "20ms")!

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try DelayRelay.start(listenHost: listen.host, listenPort: listen.port,
                                           target: (target.host, target.port), roundTrip: roundTrip.nanoseconds, group: group)
        print("delay listening on \(listen.host):\(channel.localAddress?.port ?? 0)")
        fflush(nil)
        try channel.closeFuture.wait()
    }
}
