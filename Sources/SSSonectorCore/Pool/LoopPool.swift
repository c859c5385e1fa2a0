import NIOCore
import StageABI

/// The warm pool of one upstream on one event loop (docs/architecture.md, "Warm upstream
/// pool"): idle connections oldest first, the refills in flight, the demand estimate and the
/// refill backoff. Everything here runs on `loop`; the figures it publishes are the upstream's
/// shared atomics (summed over loops).
final class LoopPool {
    let entry: UpstreamEntry
    let settings: PoolSettings
    private let group: LoopPools
    private var idle: [WarmConnection] = []
    private var opening: [ObjectIdentifier: WarmConnection] = [:]
    private var demand = PoolDemand()
    private var backoff = RefillBackoff()
    private var learned = LearnedIdleLimit()
    private var publishedTarget = 0
    /// The stages' view, from the last status query: no refills while false.
    private var eligible = true
    private(set) var isClosed = false

    /// Refills in flight per pool: up to the target (which is what demand consumes during one
    /// refill), at least this many, and never more than `max_idle`: a pool cannot flood a slow
    /// upstream with connects.
    static let minimumConcurrentRefills = 4

    init(entry: UpstreamEntry, settings: PoolSettings, group: LoopPools) {
        self.entry = entry
        self.settings = settings
        self.group = group
    }

    private var figures: FigureValues<PoolFigure> { entry.counters.pool }

    /// How long a connection may stay idle: `max_idle_time` (short for greetings), or less when
    /// the upstream was seen closing idle connections sooner.
    var idleLimit: UInt64 { min(settings.effectiveMaxIdleTime, learned.limit ?? .max) }

    private func expiry(of warm: WarmConnection) -> UInt64 {
        PoolDemand.expiry(readyAt: warm.readyAt, maxIdleTime: idleLimit, jitter: warm.jitter)
    }
    var idleCount: Int { idle.count }

    // MARK: checkout

    /// A ready connection for a client, or nil (a miss: connect as without a pool). Never
    /// waits. The newest idle connection goes first: the least likely to have been dropped.
    func take(now: UInt64) -> WarmConnection? {
        guard !isClosed else { return nil }
        demand.recordTake(now: now)
        defer { refill(now: now) }
        while let warm = idle.popLast() {
            leaveIdle(warm)
            if expiry(of: warm) <= now {
                evict(warm, .idleTimeout)
            } else if warm.isStillOpen {
                figures.add(.hits)
                if let greeting = warm.greeting { figures.add(.greetings, UInt64(greeting.readableBytes)) }
                return warm
            }
            evict(warm, .peerClosed)
        }
        figures.add(.misses)
        return nil
    }

    /// A client's own connect took `nanoseconds`: the setup time estimate learns from misses
    /// too, so demand is sized before the first refill completes.
    func noteColdConnect(nanoseconds: UInt64) {
        demand.recordSetup(nanoseconds: nanoseconds)
    }

    // MARK: refills

    /// Opens connections until idle + opening reaches the target, within the per-pool and
    /// pipeline-wide bounds, unless the upstream is not eligible or a failure is backing off.
    /// A refill starts at once, on the take that needs it: pacing refills behind live traffic
    /// (measured: one per millisecond, or a batch 2 ms later) lowered the median on loopback but
    /// raised the p99 above a pool-less host's, as the deferred handshakes landed on later
    /// clients (benchmarks/README.md, "Warm upstream pool").
    func refill(now: UInt64) {
        publishTarget(now: now)
        guard !isClosed, eligible, backoff.allows(now: now) else { return }
        let concurrency = max(Self.minimumConcurrentRefills, publishedTarget)
        while idle.count + opening.count < publishedTarget, opening.count < concurrency, group.reserveSlot() {
            let warm = WarmConnection(startedAt: now)
            opening[ObjectIdentifier(warm)] = warm
            figures.add(.refilling)
            group.connect(warm, for: self)
        }
    }

    private func publishTarget(now: UInt64) {
        let target = isClosed ? 0 : demand.target(now: now, settings)
        if target != publishedTarget {
            figures.change(.target, by: Int64(target) - Int64(publishedTarget))
            publishedTarget = target
        }
    }

    /// Everything the idle handler reports about one of this pool's connections.
    func handle(_ warm: WarmConnection, _ event: WarmIdleHandler.Event) {
        let now = group.now
        switch (warm.state, event) {
        case (.opening, .ready):
            finishOpening(warm)  // its slot now holds an idle connection
            guard !isClosed else {
                group.releaseSlot()
                return warm.close()
            }
            figures.add(.refills)
            demand.recordSetup(nanoseconds: now &- warm.startedAt)
            figures.add(.setupTime, now &- warm.startedAt)
            backoff.succeeded()
            warm.state = .idle
            warm.readyAt = now
            idle.append(warm)
            figures.add(.idle)
        case (.opening, .lost), (.opening, .data):
            refillFailed(warm, now: now)
        case (.idle, .data(var bytes)):
            let kept = warm.greeting?.readableBytes ?? 0
            if settings.serverSpeaksFirst, UInt64(kept + bytes.readableBytes) <= settings.greetingLimit {
                if warm.greeting == nil { warm.greeting = bytes } else { warm.greeting!.writeBuffer(&bytes) }
            } else {
                removeIdle(warm)
                evict(warm, .unexpectedData)
                // An upstream that talks on idle connections would make every refill fail the
                // same way: back off as after a failed refill, and say what to set.
                backoff.failed(now: now)
                group.logUnexpectedData(entry.name, failures: backoff.failures)
                refill(now: now)
            }
        case (.idle, .lost):
            removeIdle(warm)
            evict(warm, .peerClosed)
            let before = learned.limit
            learned.peerClosed(age: now &- warm.readyAt)
            if before == nil, let limit = learned.limit, limit < settings.effectiveMaxIdleTime {
                group.logLearnedIdleLimit(entry.name, limit: limit)
            }
            refill(now: now)
        default:
            break  // taken or closed: not ours any more
        }
    }

    /// A connect or TLS handshake of a refill failed (or timed out).
    func refillFailed(_ warm: WarmConnection, now: UInt64) {
        guard warm.state == .opening else { return }
        finishOpening(warm)
        group.releaseSlot()
        warm.close()
        figures.add(.refillFailures)
        backoff.failed(now: now)
        group.logRefillFailure(entry.name, failures: backoff.failures)
    }

    private func finishOpening(_ warm: WarmConnection) {
        guard opening.removeValue(forKey: ObjectIdentifier(warm)) != nil else { return }
        figures.subtract(.refilling)
        warm.handshakeTimer?.cancel()
    }

    // MARK: maintenance (every tick of the loop's pools)

    /// Applies the stages' status and the upstream's draining state, expires old idle
    /// connections, shrinks gradually toward the target, and refills.
    func maintain(now: UInt64, status: UInt8, draining: Bool) {
        guard !isClosed else { return }
        if draining { return close(.removed) }
        eligible = status == 0
        if status & UInt8(SSS_STATUS_UNHEALTHY) != 0 { evictAll(.unhealthy) }
        else if status & UInt8(SSS_STATUS_PAUSED) != 0 { evictAll(.circuitOpen) }
        let expired = idle.filter { expiry(of: $0) <= now }
        if !expired.isEmpty {
            idle.removeAll { expiry(of: $0) <= now }
            for warm in expired {
                leaveIdle(warm)
                evict(warm, .idleTimeout)
            }
        }
        publishTarget(now: now)
        let excess = demand.shrinkCount(idle: idle.count, target: max(publishedTarget, settings.minIdle), now: now)
        for _ in 0..<min(excess, idle.count) {
            let oldest = idle.removeFirst()
            leaveIdle(oldest)
            evict(oldest, .shrink)
        }
        refill(now: now)
    }

    /// Closes every idle connection and stops refilling (upstream removed, reload, shutdown).
    func close(_ reason: PoolEviction) {
        guard !isClosed else { return }
        isClosed = true
        evictAll(reason)
        for warm in opening.values { discard(warm) }
        opening = [:]
        publishTarget(now: group.now)
    }

    private func evictAll(_ reason: PoolEviction) {
        let all = idle
        idle = []
        for warm in all {
            leaveIdle(warm)
            evict(warm, reason)
        }
    }

    // MARK: bookkeeping

    private func removeIdle(_ warm: WarmConnection) {
        guard let i = idle.firstIndex(where: { $0 === warm }) else { return }
        idle.remove(at: i)
        leaveIdle(warm)
    }

    /// The connection leaves the idle list (taken or evicted).
    private func leaveIdle(_ warm: WarmConnection) {
        figures.subtract(.idle)
        group.releaseSlot()
    }

    private func evict(_ warm: WarmConnection, _ reason: PoolEviction) {
        entry.counters.evictions.add(reason)
        warm.close()
    }

    /// Closes a connection that was opening when the pool closed.
    private func discard(_ warm: WarmConnection) {
        if opening.removeValue(forKey: ObjectIdentifier(warm)) != nil {
            figures.subtract(.refilling)
            group.releaseSlot()
        }
        warm.close()
    }
}
