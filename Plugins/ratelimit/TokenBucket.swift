import ConfigValues

/// A token bucket: `rate` tokens per second up to `burst`, starting full. Pure value logic:
/// time comes in as monotonic nanoseconds, so tests drive it with a manual clock.
struct TokenBucket: Sendable {
    private(set) var rate: Double
    private(set) var burst: Double
    private(set) var tokens: Double
    private var updatedAt: UInt64

    init(rate: Double, burst: Double, now: UInt64) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updatedAt = now
    }

    /// Adds the tokens earned since the last update (never above `burst`).
    mutating func refill(now: UInt64) {
        guard now > updatedAt else { return }
        tokens = min(burst, tokens + rate * Double(now - updatedAt) / 1e9)
        updatedAt = now
    }

    /// Takes `count` tokens if there are that many.
    mutating func take(_ count: Double = 1, now: UInt64) -> Bool {
        refill(now: now)
        guard tokens >= count else { return false }
        tokens -= count
        return true
    }

    /// Takes up to `count` tokens (at least `minimum` or none); returns how many it took.
    mutating func takeUpTo(_ count: Double, minimum: Double, now: UInt64) -> Double {
        refill(now: now)
        let taken = min(count, tokens.rounded(.down))
        guard taken >= min(minimum, count), taken > 0 else { return 0 }
        tokens -= taken
        return taken
    }

    /// Nanoseconds until `count` tokens are available (0 if they are now). Saturates: a tiny
    /// rate makes the delay larger than any clock, never a trap.
    func delay(until count: Double) -> UInt64 {
        let missing = min(count, burst) - tokens
        guard missing > 0, rate > 0 else { return 0 }
        return UInt64(saturatingNanoseconds: missing / rate * 1e9)
    }

    /// Changes rate and burst at once, keeping the tokens already earned (clamped to the new
    /// burst): a change never hands out a fresh burst.
    mutating func reconfigure(rate newRate: Double, burst newBurst: Double, now: UInt64) {
        refill(now: now)
        rate = newRate
        burst = newBurst
        tokens = min(tokens, newBurst)
    }

    /// Whether the bucket is full (then it is the same as a new one and may be dropped).
    func isFull(now: UInt64) -> Bool {
        var copy = self
        copy.refill(now: now)
        return copy.tokens >= copy.burst
    }

    func tokens(now: UInt64) -> Double {
        var copy = self
        copy.refill(now: now)
        return copy.tokens
    }
}
