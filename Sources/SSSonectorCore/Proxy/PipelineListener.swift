import Logging
import NIOCore
import NIOPosix
import StageABI

/// Accepts a pipeline's connections: enforces `max_connections` at accept (over the limit the
/// connection is closed at once and counted as `overload`; it never hangs) and starts a
/// `ProxySession` for every other one, on the event loop that accepted it.
final class PipelineListener: Sendable {
    let runtime: PipelineRuntime
    let channel: Channel

    private init(runtime: PipelineRuntime, channel: Channel) {
        self.runtime = runtime
        self.channel = channel
    }

    /// The address it listens on (the port filled in when the file said 0).
    var boundAddress: SocketAddress? { channel.localAddress }

    /// Binds the pipeline's listen address.
    static func bind(_ runtime: PipelineRuntime, group: MultiThreadedEventLoopGroup, loopIndexes: LoopIndexes) -> EventLoopFuture<PipelineListener> {
        let settings = runtime.config.connection
        let address = runtime.config.listen.address
        let bootstrap = SocketOptions.apply(settings, to: ServerBootstrap(group: group))
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.admit(channel, runtime: runtime, loopIndexes: loopIndexes)
                }
            }
        return bootstrap.bind(host: address.host, port: address.port).map { channel in
            PipelineListener(runtime: runtime, channel: channel)
        }
    }

    private static func admit(_ channel: Channel, runtime: PipelineRuntime, loopIndexes: LoopIndexes) throws {
        let counters = runtime.counters
        guard counters.tryOpen(limit: runtime.config.connection.maxConnections) else {
            counters.rejected("overload")
            channel.close(promise: nil)
            return
        }
        let id = runtime.registry.makeID()
        let session = ProxySession(pipeline: runtime, loop: channel.eventLoop, id: id,
                                   threadIndex: loopIndexes.index(of: channel.eventLoop),
                                   peer: channel.remoteAddress, local: channel.localAddress)
        runtime.registry.add(NIOLoopBound(session, eventLoop: channel.eventLoop), id: id)
        try channel.pipeline.syncOperations.addHandler(RelaySideHandler(session: session, side: .client))
    }

    /// Stops accepting.
    func close() -> EventLoopFuture<Void> {
        channel.close().recover { _ in }
    }
}

/// Which of the group's loops a loop is: the `thread_index` stages shard by.
struct LoopIndexes: Sendable {
    private let indexes: [ObjectIdentifier: Int]

    init(_ group: MultiThreadedEventLoopGroup) {
        var map: [ObjectIdentifier: Int] = [:]
        for (i, loop) in group.makeIterator().enumerated() { map[ObjectIdentifier(loop)] = i }
        indexes = map
    }

    var count: Int { indexes.count }
    func index(of loop: EventLoop) -> Int { indexes[ObjectIdentifier(loop)] ?? 0 }
}
