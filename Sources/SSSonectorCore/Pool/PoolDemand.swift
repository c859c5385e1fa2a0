import ConfigValues
import Foundation

/// How many warm connections one pool (an upstream on one event loop) should hold, and when
/// to shrink, retry and expire: pure rules over the times passed in, so the tests drive them
/// with a manual clock (docs/architecture.md, "Warm upstream pool").
///
/// The target is Little's law: the connections taken while one refill is in flight are
/// m = take rate × connect-and-handshake time; the target is m × `headroom` + 2√m (bursts). It counts the idle ones
/// already open (Envoy's preconnect did not, and grew 10k connections into 80k,
/// envoyproxy/envoy#32753).
struct PoolDemand {
    /// The take rate is the larger of two exponentially decaying averages: over 1 s, so the
    /// pool grows within a second of a surge, and over 10 s, so it shrinks slowly after one
    /// (HAProxy sizes by the larger of the current and the previous period's use, too).
    static let fastWindow: UInt64 = 1_000_000_000
    static let rateWindow: UInt64 = 10_000_000_000
    /// The excess over the target shrinks by half once per interval (HAProxy's purge halves the
    /// idle connections per `pool-purge-delay`), oldest first, never all at once.
    static let shrinkInterval: UInt64 = 5_000_000_000
    /// A setup time is never estimated below this, so any demand keeps at least one warm.
    static let minimumSetupTime: Double = 1e-6

    /// Takes per second over each window, decayed to `rateUpdatedAt`.
    private var fastRate: Double = 0
    private var slowRate: Double = 0
    private var rateUpdatedAt: UInt64 = 0
    /// Connect-and-handshake time in seconds: a moving average of refills and cold connects.
    private(set) var setupTime: Double = 0
    private var lastShrinkAt: UInt64?

    /// A client wanted a connection (hit or miss).
    mutating func recordTake(now: UInt64) {
        fastRate = Self.decayed(fastRate, Self.fastWindow, from: rateUpdatedAt, to: now) + 1 / Self.seconds(Self.fastWindow)
        slowRate = Self.decayed(slowRate, Self.rateWindow, from: rateUpdatedAt, to: now) + 1 / Self.seconds(Self.rateWindow)
        rateUpdatedAt = max(rateUpdatedAt, now)
    }

    /// One connect (and TLS handshake) took `nanoseconds`.
    mutating func recordSetup(nanoseconds: UInt64) {
        let seconds = Double(nanoseconds) / 1e9
        setupTime = setupTime == 0 ? seconds : setupTime * 0.75 + seconds * 0.25
    }

    /// Takes per second as of `now`.
    func rate(at now: UInt64) -> Double {
        max(Self.decayed(fastRate, Self.fastWindow, from: rateUpdatedAt, to: now),
            Self.decayed(slowRate, Self.rateWindow, from: rateUpdatedAt, to: now))
    }

    private static func decayed(_ rate: Double, _ window: UInt64, from then: UInt64, to now: UInt64) -> Double {
        guard now > then else { return rate }
        return rate * exp(-Double(now - then) / Double(window))
    }

    private static func seconds(_ ns: UInt64) -> Double { Double(ns) / 1e9 }

    /// Takes expected during one refill: Little's law, λ × T.
    static func expectedTakes(rate: Double, setupTime: Double) -> Double { rate * setupTime }

    /// The number of warm connections to hold now.
    func target(now: UInt64, _ s: PoolSettings) -> Int {
        let r = rate(at: now)
        // Less than half a take per long window is no demand: back to min_idle.
        guard r * Self.seconds(Self.rateWindow) >= 0.5 else { return s.minIdle }
        // m takes arrive, on average, while one refill is in flight. They arrive in bursts, not
        // evenly: 2√m more covers the spread of a Poisson count (fewer than 3% of refill
        // windows see more), `headroom` the error of the estimate itself.
        let m = Self.expectedTakes(rate: r, setupTime: max(setupTime, Self.minimumSetupTime))
        let wanted = (m * s.headroom + 2 * m.squareRoot()).rounded(.up)
        return min(max(Int(min(wanted, 1e6)), s.minIdle), s.maxIdle)
    }

    /// How many of the oldest idle connections to close now (0 unless a shrink is due).
    mutating func shrinkCount(idle: Int, target: Int, now: UInt64) -> Int {
        guard idle > target else {
            lastShrinkAt = nil  // the next excess waits a whole interval
            return 0
        }
        guard let last = lastShrinkAt else {
            lastShrinkAt = now
            return 0
        }
        guard now &- last >= Self.shrinkInterval else { return 0 }
        lastShrinkAt = now
        return (idle - target + 1) / 2
    }

    /// When a connection that became idle at `readyAt` expires: `maxIdleTime` less up to 10%
    /// (`jitter` in 0..<1), so a batch opened together does not expire together (HikariCP's
    /// "negative attenuation").
    static func expiry(readyAt: UInt64, maxIdleTime: UInt64, jitter: Double) -> UInt64 {
        let cut = UInt64(Double(maxIdleTime) * 0.1 * min(max(jitter, 0), 0.999_999))
        return readyAt.addingSaturated(maxIdleTime - cut)
    }
}

/// Refill backoff after failures: 100 ms doubling to 30 s; a success resets it.
struct RefillBackoff {
    static let first: UInt64 = 100_000_000
    static let longest: UInt64 = 30_000_000_000
    private(set) var failures = 0
    private(set) var retryAt: UInt64 = 0

    /// Whether a refill may start at `now`.
    func allows(now: UInt64) -> Bool { failures == 0 || now >= retryAt }

    mutating func failed(now: UInt64) {
        failures += 1
        let shift = UInt64(min(failures - 1, 20))
        retryAt = now.addingSaturated(min(Self.first << shift, Self.longest))
    }

    mutating func succeeded() {
        failures = 0
        retryAt = 0
    }
}

/// The upstream's own idle timeout, learned from the ages at which it closed idle pooled
/// connections: the pool retires its connections at 80% of it, before the upstream does, so a
/// client is never handed a connection the upstream is about to close (the race Envoy's
/// maintainers feared in envoyproxy/envoy#2755). The oldest of the last four closes counts, so
/// one early close (an upstream restart) does not shrink the limit.
struct LearnedIdleLimit {
    static let observations = 4
    static let margin = 0.8
    private var ages: [UInt64] = []

    /// The upstream closed an idle connection `age` nanoseconds after it became ready.
    mutating func peerClosed(age: UInt64) {
        ages.append(age)
        if ages.count > Self.observations { ages.removeFirst() }
    }

    /// The idle time to stay under, once the upstream has closed two idle connections.
    var limit: UInt64? {
        guard ages.count >= 2, let oldest = ages.max() else { return nil }
        return UInt64(Double(oldest) * Self.margin)
    }
}
