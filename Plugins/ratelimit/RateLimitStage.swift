import SharedBudget
import StageKit
import Synchronization

/// `ratelimit` (docs/pipeline-reference.md, "Stock stages"): a token bucket per key; a new connection takes one token or is
/// rejected `rate_limited`. Optionally limits each connection's bytes per direction through
/// data grants (the relay's backpressure holds the rest: nothing dropped, nothing copied).
final class RateLimitStage: OpenHook, DataHook, TickHook, StatsHook, ControlHook {
    static let typeName = "ratelimit"
    static let summary = "token bucket per client IP (or global/listener) at open; optional per-connection bandwidth"

    let config: RateLimitConfig
    let host: StageHost
    let buckets: BucketTable
    /// The default limit now (changed by `set_rate` without a key).
    private let defaultLimit: Locked<RateLimitConfig.Limit>
    /// Limits set by `set_rate` for a key, applied when its bucket is (re)created.
    private let dynamicLimits = Locked<[String: RateLimitConfig.Limit]>([:])
    private let allowed: StageHost.Metric
    private let rejected: StageHost.Metric
    private let bucketsGauge: StageHost.Metric
    private let tally: AdmissionTally
    /// The budget shared through Redis (`shared`), when configured.
    private let shared: SharedLimiter?

    init(setup: StageSetup) throws {
        config = try RateLimitConfig(setup)
        host = setup.host
        buckets = BucketTable(maxKeys: config.maxKeys, defaultLimit: config.defaultLimit, now: setup.host.now())
        defaultLimit = Locked(config.defaultLimit)
        allowed = host.metric(.counter, "ratelimit_allowed_total", help: "Connections the rate limiter admitted.")
        rejected = host.metric(.counter, "ratelimit_rejected_total", help: "Connections the rate limiter rejected (rate_limited).")
        bucketsGauge = host.metric(.gauge, "ratelimit_buckets", help: "Token buckets held (one per active key).")
        tally = AdmissionTally(allowed: allowed, rejected: rejected)
        if let s = config.shared {
            let host = setup.host
            shared = SharedLimiter(
                store: RedisBudgetStore(endpoint: s.redis, timeout: s.timeout),
                settings: .init(keyPrefix: s.keyPrefix, failuresToOpen: s.circuitFailures, probeInterval: s.probeInterval),
                clock: { host.now() })
        } else {
            shared = nil
        }
    }

    deinit { shared?.stop() }

    var tickIntervalMilliseconds: UInt32 { UInt32(clamping: config.cleanupInterval / 1_000_000) }
    var disabledEvents: StageEventSet { config.bandwidth == nil ? .data : [] }

    private func key(for c: StageConnection) -> String {
        switch config.key {
        case .clientIP: c.peerIP
        case .global: "global"
        case .listener: c.listener
        }
    }

    private func limit(for key: String, address: [UInt8]) -> RateLimitConfig.Limit {
        if let dynamic = dynamicLimits.withLock({ $0[key] }) { return dynamic }
        let configured = config.limit(for: key, address: address)
        return configured == config.defaultLimit ? defaultLimit.withLock { $0 } : configured
    }

    func open(_ c: StageConnection) -> OpenVerdict {
        let key = key(for: c)
        let address = config.key == .clientIP ? c.peerAddress.bytes : []
        // The host's own bucket counts every connection, shared or not: it is the fallback.
        let ok = buckets.take(key, now: c.now) { self.limit(for: key, address: address) }
        let local: OpenVerdict = ok ? .accept : .reject(.rateLimited, "rate limit exceeded for \(key)")
        if let bw = config.bandwidth { c.setState(BandwidthState(limit: bw, now: c.now)) }
        guard let shared, let settings = config.shared else { return tally.count(local) }
        let fallback: OpenVerdict = switch settings.onError {
        case .local: local
        case .allow: .accept
        case .deny: .reject(.rateLimited, "shared rate limit unavailable for \(key)")
        }
        let budget = self.limit(for: key, address: address)
        let id = c.id
        let tally = self.tally
        let host = self.host
        let immediate = shared.admit(key: key, rate: budget.rate, burst: budget.burst) { outcome in
            let verdict = tally.count(Self.verdict(outcome, key: key, fallback: fallback))
            // After a timeout the host applied the fallback already.
            if outcome != .late { host.postVerdict(id, verdict) }
        }
        if let immediate { return tally.count(Self.verdict(immediate, key: key, fallback: fallback)) }
        return .pending(timeoutNanoseconds: settings.timeout, fallback: fallback)
    }

    /// The verdict for how the shared budget decided.
    static func verdict(_ outcome: SharedLimiter.Outcome, key: String, fallback: OpenVerdict) -> OpenVerdict {
        switch outcome {
        case .answered(.allowed): .accept
        case .answered(.denied), .cachedDenial: .reject(.rateLimited, "shared rate limit exceeded for \(key)")
        case .unavailable, .late: fallback
        }
    }

    func data(_ c: StageConnection, _ offer: DataOffer) -> DataDecision {
        c.withState(as: BandwidthState.self) { $0.grant(offer) } ?? .passAll
    }

    func tick(now: UInt64) {
        bucketsGauge.set(Double(buckets.dropFull(now: now)))
        shared?.dropExpiredDenials(now: now)
    }

    func stats() -> JSONValue {
        let top = buckets.topRejected(10).map { entry -> JSONValue in
            ["key": .string(entry.key), "rejected": .int(entry.rejected), "allowed": .int(entry.allowed)]
        }
        let d = defaultLimit.withLock { $0 }
        var figures: JSONValue = [
            "buckets": .int(buckets.count),
            "allowed": .int(tally.allowedCount),
            "rejected": .int(tally.rejectedCount),
            "default_rate": .number(d.rate), "default_burst": .number(d.burst),
            "top_rejected": .array(top),
        ]
        if let shared, let settings = config.shared, case .object(var members) = figures {
            members.append(("shared", [
                "state": .string(shared.state), "redis": .string(settings.redis.description),
                "requests": .int(shared.requests.count), "errors": .int(shared.errors.count),
                "fallbacks": .int(shared.fallbacks.count), "cached_denials": .int(shared.cachedDenials.count),
            ]))
            figures = .object(members)
        }
        return figures
    }

    func control(_ command: JSONValue) -> ControlAnswer {
        let now = host.now()
        do {
            let c = try ConfigObject(command, path: "")
            switch try c.choice("op", ["set_rate", "get"], default: "") {
            case "set_rate":
                let key = try c.string("key")
                let rate = try c.double("rate", in: Double.leastNonzeroMagnitude...1e12, rangeText: "a rate > 0")
                guard let rate else { return .badCommand("rate: required, > 0") }
                let burst = try c.double("burst", default: max(1, rate.rounded(.up)), in: 1...1e12, rangeText: "a burst >= 1")
                try c.finish()
                let limit = RateLimitConfig.Limit(rate: rate, burst: burst)
                if let key {
                    dynamicLimits.withLock { $0[key] = limit }
                    buckets.update(key, now: now, limit: limit) { entry in
                        entry.bucket.reconfigure(rate: rate, burst: burst, now: now)
                        entry.pinned = true
                    }
                } else {
                    defaultLimit.withLock { $0 = limit }
                    let pinned = dynamicLimits.withLock { Set($0.keys) }
                    buckets.updateDefaults(to: limit, now: now) { key in
                        !pinned.contains(key) && config.limit(for: key, address: CIDRBlock.parseAddress(key) ?? []) == config.defaultLimit
                    }
                }
                return .ok(describe(key, now: now))
            case "get":
                let key = try c.string("key")
                try c.finish()
                return .ok(describe(key, now: now))
            default:
                return .badCommand("op: expected \"set_rate\" or \"get\"")
            }
        } catch {
            return .badCommand("\(error)")
        }
    }

    private func describe(_ key: String?, now: UInt64) -> JSONValue {
        guard let key else {
            let d = defaultLimit.withLock { $0 }
            return ["key": .null, "rate": .number(d.rate), "burst": .number(d.burst)]
        }
        if let entry = buckets.entry(key) {
            return ["key": .string(key), "rate": .number(entry.bucket.rate), "burst": .number(entry.bucket.burst),
                    "tokens": .number(entry.bucket.tokens(now: now))]
        }
        let l = limit(for: key, address: CIDRBlock.parseAddress(key) ?? [])
        return ["key": .string(key), "rate": .number(l.rate), "burst": .number(l.burst), "tokens": .number(l.burst)]
    }
}

/// Connections admitted and rejected, counted once each whichever thread decides (the loop
/// at open, or the Redis thread for a shared verdict).
final class AdmissionTally: Sendable {
    private let allowed = Atomic<UInt64>(0)
    private let rejected = Atomic<UInt64>(0)
    private let allowedMetric: StageHost.Metric
    private let rejectedMetric: StageHost.Metric

    init(allowed: StageHost.Metric, rejected: StageHost.Metric) {
        allowedMetric = allowed
        rejectedMetric = rejected
    }

    var allowedCount: UInt64 { allowed.load(ordering: .relaxed) }
    var rejectedCount: UInt64 { rejected.load(ordering: .relaxed) }

    /// Counts `verdict` (a final one) and returns it.
    func count(_ verdict: OpenVerdict) -> OpenVerdict {
        if case .accept = verdict {
            allowed.wrappingAdd(1, ordering: .relaxed)
            allowedMetric.increment()
        } else {
            rejected.wrappingAdd(1, ordering: .relaxed)
            rejectedMetric.increment()
        }
        return verdict
    }
}

/// One connection's byte buckets (touched only on its event loop).
final class BandwidthState {
    var up: TokenBucket
    var down: TokenBucket
    /// Smallest grant worth a write (HAProxy's min_size): avoids trickling tiny chunks.
    let minimumChunk: Double

    init(limit: RateLimitConfig.Limit, now: UInt64) {
        up = TokenBucket(rate: limit.rate, burst: limit.burst, now: now)
        down = TokenBucket(rate: limit.rate, burst: limit.burst, now: now)
        minimumChunk = min(limit.burst, 1460)
    }

    func grant(_ offer: DataOffer) -> DataDecision {
        guard offer.available > 0 else { return .passAll }
        let want = Double(offer.available)
        let taken: Double
        let wait: UInt64
        if offer.direction == .up {
            taken = up.takeUpTo(want, minimum: minimumChunk, now: offer.now)
            wait = taken < want ? max(1, up.delay(until: min(want - taken, minimumChunk))) : 0
        } else {
            taken = down.takeUpTo(want, minimum: minimumChunk, now: offer.now)
            wait = taken < want ? max(1, down.delay(until: min(want - taken, minimumChunk))) : 0
        }
        return taken >= want ? .passAll : .pass(UInt64(taken), retryAfterNanoseconds: wait)
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "ratelimit", version: "1.0.0", stages: [RateLimitStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}
