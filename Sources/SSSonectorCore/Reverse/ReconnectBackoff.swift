/// When a connector dials its relay again (docs/reverse-tunnel.md, "Reconnecting"): three quick
/// retries (200 ms), then exponential from 1 s to 30 s, each with ±30 % jitter so a relay
/// restart does not bring every connector back in the same instant. A refusal (the relay
/// rejected the certificate or the identity) waits from 60 s, doubling to 15 min: retrying a
/// credential the relay refuses only loads it (frp's reconnect storms, #3543). A connection that
/// stayed up for `stableAfter` resets the count. Pure logic: the caller gives the clock and the
/// random number.
struct ReconnectBackoff: Sendable {
    static let quickRetries = 3
    static let quickDelay: UInt64 = 200_000_000
    static let baseDelay: UInt64 = 1_000_000_000
    static let maximumDelay: UInt64 = 30_000_000_000
    static let refusalDelay: UInt64 = 60_000_000_000
    static let maximumRefusalDelay: UInt64 = 900_000_000_000
    static let stableAfter: UInt64 = 60_000_000_000
    static let jitter = 0.3

    private(set) var failures = 0
    private(set) var refusals = 0
    private var upSince: UInt64?

    /// A connection registered at `now`.
    mutating func connected(now: UInt64) {
        upSince = now
        refusals = 0
    }

    /// The connection was lost, or the attempt failed (`refused`: by the relay's verdict), at
    /// `now`; returns the delay before the next attempt. `random` is uniform in 0..<1.
    mutating func nextDelay(refused: Bool, now: UInt64, random: Double) -> UInt64 {
        if let since = upSince, now &- since >= Self.stableAfter { failures = 0 }
        upSince = nil
        let base: UInt64
        if refused {
            refusals += 1
            base = min(Self.maximumRefusalDelay, Self.refusalDelay << UInt64(min(refusals - 1, 8)))
        } else {
            failures += 1
            if failures <= Self.quickRetries {
                base = Self.quickDelay
            } else {
                base = min(Self.maximumDelay, Self.baseDelay << UInt64(min(failures - Self.quickRetries - 1, 16)))
            }
        }
        let factor = 1 - Self.jitter + 2 * Self.jitter * min(max(random, 0), 1)
        return UInt64((Double(base) * factor).rounded())
    }
}
