import Locking
import Synchronization

/// One budget shared by every host that names the same store and key prefix, with what keeps
/// admissions fast when the store is not: a local cache of denied keys (a key Redis denied is
/// denied here until its retry time, without asking: a flood costs Redis nothing), and a
/// circuit around the store (after `failuresToOpen` errors or timeouts in a row, stop asking
/// for `probeInterval`, then let one admission through as a probe; no connection waits out a
/// timeout during an outage). Breakers of upstreams stay per host; only this budget is shared.
///
/// Thread-safe: the event loops call `admit`, the store's thread completes it.
public final class SharedLimiter: Sendable {
    /// How an admission was decided.
    public enum Outcome: Sendable, Equatable {
        /// The store answered.
        case answered(BudgetAnswer)
        /// Denied from the local cache of denied keys, without asking.
        case cachedDenial
        /// No answer to use (the circuit is open, the store is down, or it failed): the
        /// stage's `on_error` applies.
        case unavailable
        /// The store did not answer in time: the host already applied the stage's fallback.
        case late
    }

    public struct Settings: Sendable {
        public var keyPrefix: String
        public var failuresToOpen: Int
        public var probeInterval: UInt64
        /// Denied keys remembered at most (the oldest expiring first are dropped beyond it).
        public var maximumCachedDenials: Int

        public init(keyPrefix: String, failuresToOpen: Int = 5, probeInterval: UInt64 = 1_000_000_000,
                    maximumCachedDenials: Int = 100_000) {
            self.keyPrefix = keyPrefix
            self.failuresToOpen = failuresToOpen
            self.probeInterval = probeInterval
            self.maximumCachedDenials = maximumCachedDenials
        }
    }

    private struct Circuit {
        var consecutiveFailures = 0
        var open = false
        var probeAt: UInt64 = 0
        var probing = false
    }

    public let settings: Settings
    private let store: any BudgetStore
    private let clock: @Sendable () -> UInt64
    private let circuit = Locked(Circuit())
    private let deniedUntil = Locked<[String: UInt64]>([:])

    /// Admissions sent to the store.
    public let requests = Counter()
    /// Failed or timed-out requests (and admissions the store could not take at all).
    public let errors = Counter()
    /// Admissions decided by `on_error` (circuit open, store down, error, timeout).
    public let fallbacks = Counter()
    /// Admissions denied from the local cache, without a request.
    public let cachedDenials = Counter()

    public init(store: any BudgetStore, settings: Settings, clock: @escaping @Sendable () -> UInt64) {
        self.store = store
        self.settings = settings
        self.clock = clock
    }

    /// `ok` while the store answers; `degraded` while the circuit is open.
    public var state: String { circuit.withLock { $0.open } ? "degraded" : "ok" }

    /// Asks for one token of `key`. Returns the outcome when it is known at once (a cached
    /// denial, an open circuit, an unreachable store); otherwise nil, and `decided` runs later,
    /// once, on the store's thread.
    public func admit(key: String, rate: Double, burst: Double,
                      decided: @escaping @Sendable (Outcome) -> Void) -> Outcome? {
        let now = clock()
        if let until = deniedUntil.withLock({ $0[key] }), until > now {
            cachedDenials.add()
            return .cachedDenial
        }
        guard mayAsk(now: now) else {
            fallbacks.add()
            return .unavailable
        }
        guard store.isReachable else {
            failed(now: now)
            return .unavailable
        }
        requests.add()
        store.acquire(key: settings.keyPrefix + key, rate: rate, burst: burst) { [self] result in
            let at = clock()
            switch result {
            case .success(let answer):
                succeeded()
                if case .denied(let retry) = answer { remember(key, deniedUntil: at &+ retry) }
                decided(.answered(answer))
            case .failure(.timedOut):
                failed(now: at)
                decided(.late)
            case .failure:
                failed(now: at)
                decided(.unavailable)
            }
        }
        return nil
    }

    /// Whether to ask the store now: yes while the circuit is closed; while it is open, one
    /// probe per `probeInterval`.
    private func mayAsk(now: UInt64) -> Bool {
        circuit.withLock { c in
            guard c.open else { return true }
            guard !c.probing, now >= c.probeAt else { return false }
            c.probing = true
            c.probeAt = now &+ settings.probeInterval
            return true
        }
    }

    private func succeeded() {
        circuit.withLock { c in
            c.consecutiveFailures = 0
            c.open = false
            c.probing = false
        }
    }

    private func failed(now: UInt64) {
        errors.add()
        fallbacks.add()
        circuit.withLock { c in
            c.consecutiveFailures += 1
            c.probing = false
            if !c.open && c.consecutiveFailures >= settings.failuresToOpen {
                c.open = true
                c.probeAt = now &+ settings.probeInterval
            }
        }
    }

    private func remember(_ key: String, deniedUntil until: UInt64) {
        deniedUntil.withLock { table in
            if table.count >= settings.maximumCachedDenials {
                let now = clock()
                table = table.filter { $0.value > now }
                if table.count >= settings.maximumCachedDenials { table.removeAll() }
            }
            table[key] = until
        }
    }

    /// Drops cached denials whose retry time has passed (the stage's tick).
    public func dropExpiredDenials(now: UInt64) {
        deniedUntil.withLock { table in table = table.filter { $0.value > now } }
    }

    /// Keys denied locally now.
    public var cachedDenialCount: Int { deniedUntil.withLock { $0.count } }

    public func stop() { store.stop() }
}
