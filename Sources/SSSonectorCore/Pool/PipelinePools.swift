import Logging
import NIOCore
import NIOSSL
import Synchronization

/// A pipeline's warm pools: one `LoopPools` per event loop, each keeping one `LoopPool` per
/// upstream whose pool is enabled (docs/architecture.md, "Warm upstream pool"). Off (and free)
/// when no upstream enables its pool.
final class PipelinePools: @unchecked Sendable {  // `slots` is written once, before the runtime is published
    let enabled: Bool
    private let maxTotal: Int
    /// Idle plus opening connections over every loop and upstream (`max_total`).
    private let held = Atomic<Int>(0)
    /// One per event loop, by loop index; each slot's content is touched on its loop only.
    nonisolated(unsafe) private var slots: [LoopSlot] = []

    /// How often each loop's pools apply the stages' status, expire, shrink and refill.
    static let maintenanceInterval = TimeAmount.milliseconds(250)

    init(_ config: PipelineConfig) {
        enabled = config.connection.pool.enabled || config.upstreams.contains { $0.pool.enabled }
        maxTotal = config.connection.pool.maxTotal
    }

    /// Creates the pools on every loop and starts their maintenance (the first pass opens
    /// `min_idle` connections). Call once, before the runtime takes connections.
    func start(_ runtime: PipelineRuntime, loops: [EventLoop]) {
        guard enabled, slots.isEmpty else { return }
        slots = loops.enumerated().map { LoopSlot(loop: $0.element, index: $0.offset) }
        for slot in slots {
            slot.loop.execute { [weak runtime] in
                guard let runtime else { return }
                slot.pools = LoopPools(runtime: runtime, shared: self, loop: slot.loop)
                slot.pools?.start()
            }
        }
    }

    /// Closes every idle connection and stops the refills (reload, shutdown), on each loop.
    func close(_ reason: PoolEviction) {
        for slot in slots {
            slot.loop.execute { slot.pools?.close(reason) }
        }
    }

    /// A warm connection to `entry` for a client on loop `index` (that loop only), or nil.
    func take(_ entry: UpstreamEntry, loopIndex: Int, now: UInt64) -> WarmConnection? {
        guard enabled, loopIndex < slots.count else { return nil }
        return slots[loopIndex].pools?.pool(for: entry.id)?.take(now: now)
    }

    /// A client connected to `entry` without the pool (a miss) in `nanoseconds`.
    func noteColdConnect(_ entry: UpstreamEntry, loopIndex: Int, nanoseconds: UInt64) {
        guard enabled, loopIndex < slots.count else { return }
        slots[loopIndex].pools?.pool(for: entry.id)?.noteColdConnect(nanoseconds: nanoseconds)
    }

    func reserveSlot() -> Bool {
        let after = held.wrappingAdd(1, ordering: .relaxed).newValue
        if after <= maxTotal { return true }
        held.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func releaseSlot() { held.wrappingSubtract(1, ordering: .relaxed) }

    /// Connections the pools hold now (idle plus opening), for tests and `/stats`.
    var heldCount: Int { held.load(ordering: .relaxed) }
}

/// One loop's place in `PipelinePools`.
final class LoopSlot: @unchecked Sendable {  // `pools` is read and written on `loop` only
    let loop: EventLoop
    let index: Int
    var pools: LoopPools?

    init(loop: EventLoop, index: Int) {
        self.loop = loop
        self.index = index
    }
}

/// The pools of one pipeline on one event loop, by upstream id, and their maintenance task.
final class LoopPools {
    private weak var runtime: PipelineRuntime?
    private let shared: PipelinePools
    private let clock: any HostClock
    private let logger: Logger
    let loop: EventLoop
    private var pools: [UInt64: LoopPool] = [:]
    private var task: RepeatedTask?
    private var closed = false

    init(runtime: PipelineRuntime, shared: PipelinePools, loop: EventLoop) {
        self.runtime = runtime
        self.shared = shared
        self.clock = runtime.clock
        self.logger = runtime.logger
        self.loop = loop
    }

    var now: UInt64 { clock.monotonicNanoseconds() }

    func start() {
        maintain()
        let bound = NIOLoopBound(self, eventLoop: loop)
        task = loop.scheduleRepeatedTask(initialDelay: PipelinePools.maintenanceInterval,
                                         delay: PipelinePools.maintenanceInterval) { _ in bound.value.maintain() }
    }

    func pool(for id: UInt64) -> LoopPool? { pools[id] }

    /// One maintenance pass: new upstreams get a pool, removed ones lose theirs, and each
    /// pool applies the stages' status of its upstream.
    func maintain() {
        // Holding a use keeps the stages alive while their status hook runs.
        guard !closed, let runtime, runtime.enter() else { return }
        defer { runtime.leave() }
        let snapshot = runtime.upstreams.current
        let status = runtime.chain.upstreamStatus(of: snapshot, now: now)
        let now = self.now
        var present = Set<UInt64>()
        for (i, entry) in snapshot.entries.enumerated() {
            let settings = runtime.poolSettings(for: entry)
            guard settings.enabled else { continue }
            present.insert(entry.id)
            let pool: LoopPool
            if let existing = pools[entry.id] {
                pool = existing
            } else {
                guard !entry.draining else { continue }
                pool = LoopPool(entry: entry, settings: settings, group: self)
                pools[entry.id] = pool
            }
            pool.maintain(now: now, status: status[i], draining: entry.draining)
        }
        for (id, pool) in pools where !present.contains(id) {
            pool.close(.removed)
            pools[id] = nil
        }
    }

    func close(_ reason: PoolEviction) {
        guard !closed else { return }
        closed = true
        task?.cancel()
        for pool in pools.values { pool.close(reason) }
        pools = [:]  // breaks the pool ↔ group cycle
    }

    func reserveSlot() -> Bool { shared.reserveSlot() }
    func releaseSlot() { shared.releaseSlot() }

    /// Opens one refill connection for `pool`: TCP with the pipeline's socket options, then,
    /// for a TLS upstream, the full handshake with certificate verification, all bounded by
    /// `connect_timeout`. The idle handler reports when it is ready.
    func connect(_ warm: WarmConnection, for pool: LoopPool) {
        guard let runtime else { return pool.refillFailed(warm, now: now) }
        let tls = runtime.tls.upstreams[pool.entry.name]
        let settings = runtime.config.connection
        let bound = NIOLoopBound((warm, pool, self), eventLoop: loop)
        UpstreamConnector.connect(to: runtime.target(for: pool.entry), on: loop, settings: settings) { channel in
            if let tls {
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
            }
            let (warm, pool, _) = bound.value
            try channel.pipeline.syncOperations.addHandler(
                WarmIdleHandler(connection: warm, awaitsHandshake: tls != nil) { pool.handle($0, $1) })
        }.whenComplete { result in
            let (warm, pool, group) = bound.value
            switch result {
            case .failure:
                pool.refillFailed(warm, now: group.now)
            case .success(let channel):
                guard warm.state == .opening else {
                    if warm.state == .closed { channel.close(promise: nil) }
                    return
                }
                guard tls != nil else { return }
                let remaining = settings.connectTimeout &- min(settings.connectTimeout, group.now &- warm.startedAt)
                warm.handshakeTimer = group.loop.scheduleTask(in: .nanoseconds(Int64(clamping: max(remaining, 1)))) {
                    let (warm, pool, group) = bound.value
                    pool.refillFailed(warm, now: group.now)
                }
            }
        }
    }

    /// One line when an upstream starts sending bytes on idle connections.
    func logUnexpectedData(_ upstream: String, failures: Int) {
        guard failures == 1 else { return }
        logger.warning("upstream sent bytes on an idle warm connection; closed it (set pool.server_speaks_first for SMTP, MySQL, SSH)",
                       metadata: ["upstream": "\(upstream)"])
    }

    /// One line when a pool learns that its upstream closes idle connections sooner than
    /// `max_idle_time`.
    func logLearnedIdleLimit(_ upstream: String, limit: UInt64) {
        logger.info("upstream closes idle connections early; the warm pool now retires them sooner",
                    metadata: ["upstream": "\(upstream)", "idle_limit_ms": "\(limit / 1_000_000)"])
    }

    /// One line when a pool's refills start failing (not one per attempt: they back off).
    func logRefillFailure(_ upstream: String, failures: Int) {
        guard failures == 1 else { return }
        logger.warning("warm pool refill failed; backing off", metadata: ["upstream": "\(upstream)"])
    }
}
