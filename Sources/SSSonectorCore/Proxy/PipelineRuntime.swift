import Locking
import Logging
import NIOCore
import Synchronization

/// A running pipeline: its validated config, live upstream table, stage chain and counters.
/// Shared by every connection of the pipeline (thread-safe).
public final class PipelineRuntime: Sendable {
    public let config: PipelineConfig
    public let upstreams: UpstreamTable
    public let chain: StageChain
    public let counters = PipelineCounters()
    public let clock: any HostClock
    let registry: ConnectionRegistry
    /// The connections this runtime's stages may post to (`conn_post_*`).
    let scope: ConnectionScope
    let logger: Logger
    /// Parsed upstream addresses by upstream id (addresses never change for an id).
    private let targets = Locked<[UInt64: UpstreamTarget]>([:])

    /// TLS contexts of the listener and the upstreams.
    let tls: PipelineTLS
    /// The warm upstream pools (off unless an upstream enables its pool).
    let pools: PipelinePools
    /// The host's relay: where reverse upstreams (`reverse.service`) find their connectors.
    let relayHub: RelayHub?
    /// How sessions reach upstreams (a fake in the unit tests).
    let dialer: any UpstreamDialing
    /// Which code moves this pipeline's bytes (docs/architecture.md, "Two data paths").
    public let dataPath: DataPath

    init(config: PipelineConfig, upstreams: UpstreamTable, chain: StageChain, clock: any HostClock,
         registry: ConnectionRegistry, scope: ConnectionScope, logger: Logger, tls: PipelineTLS = PipelineTLS(),
         relayHub: RelayHub? = nil, dataPath: DataPath = .nio, dialer: (any UpstreamDialing)? = nil) {
        self.dataPath = dataPath
        self.dialer = dialer ?? (dataPath == .epoll ? SocketUpstreamDialer() : ChannelUpstreamDialer())
        self.tls = tls
        self.relayHub = relayHub
        self.pools = PipelinePools(config)
        self.scope = scope
        self.config = config
        self.upstreams = upstreams
        self.chain = chain
        self.clock = clock
        self.registry = registry
        self.logger = logger
    }

    public var name: String { config.name }

    // MARK: life cycle (one owner: whoever ends the last use destroys the stages, once)

    /// Connections using this runtime (low bits) and whether a reload retired it (`retiredBit`):
    /// one word, so a retire and the last connection's close agree on which of them destroys.
    private let uses = Atomic<UInt64>(0)
    private static let retiredBit: UInt64 = 1 << 63
    private let destroyed = Atomic<Bool>(false)
    /// Called (on the thread of the last close) once a retired runtime has no connection left.
    private let onDrained = Locked<(@Sendable (PipelineRuntime) -> Void)?>(nil)

    /// A new connection starts using this runtime. False when it was retired and drained (its
    /// stages are being destroyed): take the listener's current runtime instead.
    func enter() -> Bool {
        var seen = uses.load(ordering: .acquiring)
        while true {
            if seen == Self.retiredBit { return false }
            let (done, current) = uses.compareExchange(expected: seen, desired: seen + 1, ordering: .acquiringAndReleasing)
            if done { return true }
            seen = current
        }
    }

    /// A connection that entered has finished with the chain.
    func leave() {
        let after = uses.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue
        if after == Self.retiredBit { drained() }
    }

    /// Retires the runtime (a reload replaced it): `whenDrained` runs once its last connection
    /// has left, at once if none is open.
    func retire(whenDrained: @escaping @Sendable (PipelineRuntime) -> Void) {
        onDrained.withLock { $0 = whenDrained }
        let after = uses.bitwiseOr(Self.retiredBit, ordering: .acquiringAndReleasing).newValue
        if after == Self.retiredBit { drained() }
    }

    private func drained() {
        onDrained.withLock { callback -> (@Sendable (PipelineRuntime) -> Void)? in
            defer { callback = nil }
            return callback
        }?(self)
    }

    /// Destroys every stage instance, the first time only (shutdown and a drained retirement
    /// may both ask).
    func destroyStages() {
        guard destroyed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        chain.destroyAll()
    }

    /// Whether the stages were destroyed.
    var isDestroyed: Bool { destroyed.load(ordering: .acquiring) }

    /// The pool settings of `entry`: its own from the file, else the pipeline's (an upstream
    /// added through the admin API).
    func poolSettings(for entry: UpstreamEntry) -> PoolSettings {
        config.upstreams.first { $0.name == entry.name }?.pool ?? config.connection.pool
    }

    /// Where to connect for upstream `entry`, parsed on first use.
    func target(for entry: UpstreamEntry) -> UpstreamTarget {
        targets.withLock { cache in
            if let known = cache[entry.id] { return known }
            let parsed = UpstreamConnector.target(for: entry.address)
            cache[entry.id] = parsed
            return parsed
        }
    }
}
