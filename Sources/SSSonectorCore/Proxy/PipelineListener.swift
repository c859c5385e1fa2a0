import Logging
import NIOCore
import NIOPosix
import NIOSSL
import StageABI
import Synchronization

/// Accepts a pipeline's connections: enforces `max_connections` at accept (over the limit the
/// connection is closed at once and counted as `overload`; it never hangs) and starts a
/// `ProxySession` for every other one, on the event loop that accepted it.
final class PipelineListener: Sendable {
    /// The runtime new connections get; a reload swaps it (open connections keep theirs).
    private let slot: RuntimeSlot
    let channel: Channel

    private init(slot: RuntimeSlot, channel: Channel) {
        self.slot = slot
        self.channel = channel
    }

    var runtime: PipelineRuntime { slot.runtime }

    /// Hands new connections to `runtime` from now on; returns the one it replaces.
    func swap(to runtime: PipelineRuntime) -> PipelineRuntime { slot.swap(runtime) }

    /// The address it listens on (the port filled in when the file said 0).
    var boundAddress: SocketAddress? { channel.localAddress }

    /// Binds the pipeline's listen address.
    static func bind(_ runtime: PipelineRuntime, group: MultiThreadedEventLoopGroup, loopIndexes: LoopIndexes) -> EventLoopFuture<PipelineListener> {
        let settings = runtime.config.connection
        let address = runtime.config.listen.address
        let slot = RuntimeSlot(runtime)
        let bootstrap = SocketOptions.apply(settings, to: ServerBootstrap(group: group))
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.admit(channel, runtime: slot.runtime, loopIndexes: loopIndexes)
                }
            }
        return bootstrap.bind(host: address.host, port: address.port).map { channel in
            PipelineListener(slot: slot, channel: channel)
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
        if let server = runtime.tls.server {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server))
        }
        try channel.pipeline.syncOperations.addHandler(
            RelaySideHandler(session: session, side: .client, awaitsHandshake: runtime.tls.server != nil))
    }

    /// Stops accepting.
    func close() -> EventLoopFuture<Void> {
        channel.close().recover { _ in }
    }
}

/// The current runtime of a listener, swappable by a reload.
final class RuntimeSlot: Sendable {
    private let current: Mutex<PipelineRuntime>
    init(_ runtime: PipelineRuntime) { current = Mutex(runtime) }
    var runtime: PipelineRuntime { current.withLock { $0 } }
    func swap(_ next: PipelineRuntime) -> PipelineRuntime {
        current.withLock { old in
            defer { old = next }
            return old
        }
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
