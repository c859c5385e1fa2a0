import Locking
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import StageABI
import Synchronization

/// Accepts a pipeline's connections: enforces `max_connections` at accept (over the limit the
/// connection is closed at once and counted as `overload`; it never hangs) and starts a
/// `ProxySession` for every other one, on the event loop that accepted it.
///
/// There is one listening socket per event loop, all bound to the same address with
/// `SO_REUSEPORT`, so the kernel spreads new connections over the loops and a connection is
/// accepted, relayed and connected upstream on one thread: no hand-off between loops (the
/// layout HAProxy and nginx use with several threads or workers).
final class PipelineListener: Sendable {
    /// The runtime new connections get; a reload swaps it (open connections keep theirs).
    private let slot: RuntimeSlot
    /// One listening channel per event loop (none for a connector).
    let channels: [Channel]
    /// A connector pipeline's connections to its relay (`listen.reverse`), in place of sockets.
    let reverse: ReverseConnector?
    /// On the epoll data path: one listening socket per epoll loop, in place of channels.
    let sockets: [SocketListener]

    init(slot: RuntimeSlot, channels: [Channel], reverse: ReverseConnector? = nil, sockets: [SocketListener] = []) {
        self.slot = slot
        self.channels = channels
        self.reverse = reverse
        self.sockets = sockets
    }

    var runtime: PipelineRuntime { slot.runtime }

    /// Hands new connections to `runtime` from now on; returns the one it replaces.
    func swap(to runtime: PipelineRuntime) -> PipelineRuntime { slot.swap(runtime) }

    /// The address it listens on (the port filled in when the file said 0).
    var boundAddress: SocketAddress? { channels.first?.localAddress ?? sockets.first?.boundAddress }

    /// Whether every listening socket is still open (a connector: still dialing).
    var isActive: Bool { reverse?.isRunning ?? (channels.allSatisfy(\.isActive) && sockets.allSatisfy(\.isOpen)) }

    /// A connector pipeline: dials its relay instead of binding (`listen.reverse`).
    static func connect(_ runtime: PipelineRuntime, group: MultiThreadedEventLoopGroup, loopIndexes: LoopIndexes) -> PipelineListener? {
        guard let settings = runtime.config.listen.reverse, let tls = runtime.tls.reverse else { return nil }
        let slot = RuntimeSlot(runtime)
        let connector = ReverseConnector(slot: slot, settings: settings, tls: tls, group: group, loopIndexes: loopIndexes,
                                         logger: runtime.logger)
        connector.start()
        return PipelineListener(slot: slot, channels: [], reverse: connector)
    }

    /// Binds the pipeline's listen address on every loop of `group`. The first socket binds
    /// the address as written; the others bind the port it got, so port 0 works too.
    static func bind(_ runtime: PipelineRuntime, group: MultiThreadedEventLoopGroup, loopIndexes: LoopIndexes) -> EventLoopFuture<PipelineListener> {
        let address = runtime.config.listen.address
        let slot = RuntimeSlot(runtime)
        let loops = Array(group.makeIterator())
        let first = bootstrap(runtime, on: loops[0], slot: slot, loopIndexes: loopIndexes)
            .bind(host: address.host, port: address.port)
        return first.flatMap { firstChannel in
            let port = firstChannel.localAddress?.port ?? address.port
            let others = loops.dropFirst().map { loop in
                bootstrap(runtime, on: loop, slot: slot, loopIndexes: loopIndexes).bind(host: address.host, port: port)
            }
            return EventLoopFuture.whenAllComplete(others, on: firstChannel.eventLoop).flatMapThrowing { results in
                var channels = [firstChannel]
                var failure: Error?
                for result in results {
                    switch result {
                    case .success(let channel): channels.append(channel)
                    case .failure(let error): failure = failure ?? error
                    }
                }
                if let failure {
                    for channel in channels { channel.close(promise: nil) }
                    throw failure
                }
                return PipelineListener(slot: slot, channels: channels)
            }
        }
    }

    /// A listening socket on `loop` whose connections stay on `loop`. TCP_NODELAY, SO_KEEPALIVE
    /// and TCP_KEEPIDLE are set on the listening socket: Linux copies them to every accepted
    /// socket, which saves three system calls and NIO's per-option future chain per connection.
    private static func bootstrap(_ runtime: PipelineRuntime, on loop: EventLoop, slot: RuntimeSlot, loopIndexes: LoopIndexes) -> ServerBootstrap {
        let settings = runtime.config.connection
        var bootstrap = ServerBootstrap(group: loop, childGroup: loop)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(reusePort, value: 1)
        if settings.keepAlive {
            bootstrap = bootstrap
                .serverChannelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
                .serverChannelOption(SocketOptions.keepIdle, value: SocketOptions.keepIdleSeconds(settings))
        }
        let idleTimers = LoopIdleTimers(loop: loop, clock: runtime.clock)
        let backoff = AcceptBackoff(slot: slot)
        return bootstrap.serverChannelInitializer { channel in
            // NIO's classic ServerBootstrap adds no accept backoff: without one, a full
            // descriptor table (EMFILE) makes accept fail at once, again and again, at 100% CPU.
            channel.eventLoop.makeVoidFuture {
                try channel.pipeline.syncOperations.addHandler(
                    AcceptBackoffHandler(shouldForwardIOErrorCaught: false, backoffProvider: backoff.delay(after:)))
            }
        }
        .childChannelInitializer { channel in
            channel.eventLoop.makeVoidFuture {
                try Self.admit(channel, runtime: slot.enterRuntime(), gate: slot.gate, idleTimers: idleTimers, loopIndexes: loopIndexes)
            }
        }
    }

    /// SO_REUSEPORT (NIO names no constant for it).
    private static let reusePort = ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT))

    /// Starts a session for an accepted connection (or a connector's tunnel stream: `peer` is
    /// then the client's address as the relay reported it, and the session starts at once, the
    /// stream being open already).
    static func admit(_ channel: Channel, runtime: PipelineRuntime, gate: AdmissionGate, idleTimers: LoopIdleTimers,
                      loopIndexes: LoopIndexes, peer: SocketAddress? = nil, tunnelStream: Bool = false) throws {
        let counters = runtime.counters
        guard gate.tryEnter(limit: runtime.config.connection.maxConnections) else {
            counters.rejected("overload")
            runtime.leave()
            channel.close(promise: nil)
            return
        }
        counters.opened()
        do {
            // A tunnel stream has no socket options (and half-closes through its codec).
            if !tunnelStream { try SocketOptions.applyChannelOptions(to: channel) }
        } catch {
            counters.closed(bytesUp: 0, bytesDown: 0)
            gate.leave()
            runtime.leave()
            throw error
        }
        let id = runtime.registry.makeID()
        let session = ProxySession(pipeline: runtime, gate: gate, loop: channel.eventLoop, idleTimers: idleTimers, id: id,
                                   threadIndex: loopIndexes.index(of: channel.eventLoop),
                                   peer: peer ?? channel.remoteAddress, local: channel.localAddress, tunnelStream: tunnelStream)
        runtime.registry.add(NIOLoopBound(session, eventLoop: channel.eventLoop), id: id, scope: runtime.scope)
        do {
            if let server = runtime.tls.server {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server))
            }
            try channel.pipeline.syncOperations.addHandler(
                RelaySideHandler(session: session, side: .client, plainSocket: runtime.tls.server == nil && !tunnelStream,
                                 awaitsHandshake: runtime.tls.server != nil))
            if tunnelStream { session.start(peerIdentity: nil) }
        } catch {
            session.finish(SSS_CLOSE_ERROR)  // gives back its place and its registry entry
            throw error
        }
    }

    /// Stops accepting (a connector: stops redialing; its connections stay for their streams).
    func close() -> EventLoopFuture<Void> {
        if let reverse {
            reverse.stop(drain: slot.runtime.config.connection.drainTimeout)
            return reverse.loop.makeSucceededVoidFuture()
        }
        if !sockets.isEmpty {
            let closed = sockets.map { socket in socket.loop.submit { socket.close() } }
            return EventLoopFuture.andAllComplete(closed, on: sockets[0].loop)
        }
        let loop = channels[0].eventLoop
        return EventLoopFuture.andAllComplete(channels.map { $0.close().recover { _ in } }, on: loop)
    }
}

/// What a listener does when `accept` fails (no descriptors left, no kernel memory): pauses
/// accepting for `pause` (connections wait in the backlog, as with HAProxy and nginx), counts
/// the failure (`accept_errors` in `/stats`) and logs it, at most once per `logInterval`.
final class AcceptBackoff: Sendable {
    static let pause = TimeAmount.milliseconds(250)
    static let logInterval: UInt64 = 10_000_000_000
    private let slot: RuntimeSlot
    private let lastLogged = Atomic<UInt64>(0)

    init(slot: RuntimeSlot) { self.slot = slot }

    func delay(after error: IOError) -> TimeAmount? {
        let runtime = slot.runtime
        let count = runtime.counters.figures.change(.acceptErrors, by: 1)
        let now = runtime.clock.monotonicNanoseconds()
        let last = lastLogged.load(ordering: .relaxed)
        if last == 0 || now &- last >= Self.logInterval,
           lastLogged.compareExchange(expected: last, desired: max(now, 1), ordering: .relaxed).exchanged {
            let reason = String(cString: strerror(error.errnoCode))
            runtime.logger.error("cannot accept connections; pausing accepts for 250ms", metadata: [
                "error": "\(reason)", "errno": "\(error.errnoCode)", "accept_errors": "\(count)",
            ])
        }
        return Self.pause
    }
}

/// The current runtime of a listener, swappable by a reload, and the listener's admission gate,
/// which outlives every runtime.
final class RuntimeSlot: Sendable {
    private let current: Locked<PipelineRuntime>
    let gate = AdmissionGate()
    init(_ runtime: PipelineRuntime) { current = Locked(runtime) }
    var runtime: PipelineRuntime { current.withLock { $0 } }

    /// The current runtime, entered (`PipelineRuntime.enter`) for a new connection. A runtime
    /// retired and drained between the read and the enter is skipped for its successor.
    func enterRuntime() -> PipelineRuntime {
        while true {
            let candidate = runtime
            if candidate.enter() { return candidate }
        }
    }
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
