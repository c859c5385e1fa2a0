import StageABI

/// Decides what follows a failed connect attempt (docs/architecture.md, "A connection's bytes"; ABI retry decisions).
///
/// The first stage opinion in chain order wins: give up, or retry after a delay. Without one,
/// the host's policy applies: up to `retryAttempts` retries after the first attempt; the next
/// try goes at once to an upstream not yet tried in this round; only when every eligible
/// upstream has been tried does a new round start, after `retryInterval`; never a wait after
/// the last failure.
public struct RetryPlanner: Sendable {
    /// Total attempts the host's default policy allows (1 + retry_attempts).
    public let maxAttempts: Int
    public let retryInterval: UInt64
    /// A hard cap even when stages keep asking for retries.
    public static let absoluteMaxAttempts = 64

    public private(set) var attempts = 0
    /// Upstream ids tried in the current round.
    public private(set) var triedThisRound: Set<UInt64> = []

    public init(retryAttempts: Int, retryInterval: UInt64) {
        self.maxAttempts = retryAttempts + 1
        self.retryInterval = retryInterval
    }

    /// What to do next.
    public enum Next: Equatable, Sendable {
        case tryNow
        case tryAfter(nanoseconds: UInt64)
        case giveUp
    }

    /// Call before each attempt.
    public mutating func attempting(upstreamID: UInt64) {
        attempts += 1
        triedThisRound.insert(upstreamID)
    }

    /// The connect succeeded: no round follows, so the tried set is let go (an idle
    /// connection keeps no allocation for it).
    public mutating func connected() {
        triedThisRound = []
    }

    /// After a failed attempt: `untried` is how many eligible upstreams this round has not
    /// tried; `decision` the stages' opinion.
    public mutating func afterFailure(untried: Int, decision: sss_retry_decision) -> Next {
        if attempts >= Self.absoluteMaxAttempts { return .giveUp }
        switch decision.action {
        case SSS_RETRY_GIVE_UP:
            return .giveUp
        case SSS_RETRY_AFTER:
            if untried == 0 { triedThisRound.removeAll() }
            return decision.retry_after_ns == 0 ? .tryNow : .tryAfter(nanoseconds: decision.retry_after_ns)
        default:
            if attempts >= maxAttempts { return .giveUp }
            if untried > 0 { return .tryNow }
            triedThisRound.removeAll()
            return retryInterval == 0 ? .tryNow : .tryAfter(nanoseconds: retryInterval)
        }
    }
}
