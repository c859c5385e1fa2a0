import Locking
import StageABI
import Synchronization

/// The host's own figures for one pipeline (`/stats` "connections", docs/operations.md). Lock-free except
/// the per-reason rejection table, which is touched only when a connection is rejected.
public final class PipelineCounters: Sendable {
    public let active = Atomic<Int64>(0)
    public let peak = Atomic<Int64>(0)
    public let total = Atomic<UInt64>(0)
    public let failedConnects = Atomic<UInt64>(0)
    public let bytesUp = Atomic<UInt64>(0)
    public let bytesDown = Atomic<UInt64>(0)
    public let connectLatencyTotalNanoseconds = Atomic<UInt64>(0)
    public let connects = Atomic<UInt64>(0)
    /// Failed `accept` calls (EMFILE, ENFILE, ENOMEM...): each one paused accepting.
    public let acceptErrors = Atomic<UInt64>(0)
    private let rejections = Locked<[String: UInt64]>([:])

    public init() {}

    /// Counts an accepted connection (the listener's `AdmissionGate` let it in).
    func opened() {
        let now = active.wrappingAdd(1, ordering: .relaxed).newValue
        total.wrappingAdd(1, ordering: .relaxed)
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (done, current) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if done { break }
            seen = current
        }
    }

    func closed(bytesUp up: UInt64, bytesDown down: UInt64) {
        active.wrappingSubtract(1, ordering: .relaxed)
        bytesUp.wrappingAdd(up, ordering: .relaxed)
        bytesDown.wrappingAdd(down, ordering: .relaxed)
    }

    func rejected(_ reason: String) {
        rejections.withLock { $0[reason, default: 0] += 1 }
    }

    func connected(latency: UInt64) {
        connects.wrappingAdd(1, ordering: .relaxed)
        connectLatencyTotalNanoseconds.wrappingAdd(latency, ordering: .relaxed)
    }

    /// Rejections by reason name (`rate_limited`, `overload`, ...).
    public var rejectedByReason: [String: UInt64] { rejections.withLock { $0 } }

    /// Average latency of successful connects, in seconds.
    public var averageConnectLatencySeconds: Double {
        let n = connects.load(ordering: .relaxed)
        return n == 0 ? 0 : Double(connectLatencyTotalNanoseconds.load(ordering: .relaxed)) / Double(n) / 1e9
    }
}

/// The open connections of one listener, whatever configuration generation they started on:
/// `max_connections` protects the process, so a reload must not make room for another full
/// set. The listener owns it across reloads; each session leaves it once, when it finishes.
final class AdmissionGate: Sendable {
    private let open = Atomic<Int64>(0)

    init() {}

    /// Takes a place if fewer than `limit` are taken; false means over the limit.
    func tryEnter(limit: Int) -> Bool {
        let now = open.wrappingAdd(1, ordering: .relaxed).newValue
        guard now <= Int64(limit) else {
            open.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func leave() { open.wrappingSubtract(1, ordering: .relaxed) }

    /// Places taken now.
    var count: Int64 { open.load(ordering: .relaxed) }
}

/// Stable names for the ABI's codes (from the header's inline helpers).
public enum ABINames {
    public static func reason(_ code: UInt32) -> String { String(cString: sss_reason_name(code)) }
    public static func closeCause(_ cause: UInt32) -> String { String(cString: sss_close_cause_name(cause)) }
    public static func connectOutcome(_ outcome: UInt32) -> String { String(cString: sss_connect_outcome_name(outcome)) }
}
