import Foundation

/// The clocks the host and its stages read. Injected everywhere time matters, so tests drive
/// token buckets, windows and timeouts with a manual clock and never sleep.
public protocol HostClock: Sendable {
    /// Monotonic nanoseconds (arbitrary origin; never goes back).
    func monotonicNanoseconds() -> UInt64
    /// Wall-clock nanoseconds since the Unix epoch.
    func wallNanoseconds() -> UInt64
}

/// The real clocks: CLOCK_MONOTONIC and CLOCK_REALTIME.
public struct SystemClock: HostClock {
    public init() {}

    public func monotonicNanoseconds() -> UInt64 { Self.read(CLOCK_MONOTONIC) }
    public func wallNanoseconds() -> UInt64 { Self.read(CLOCK_REALTIME) }

    private static func read(_ id: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
