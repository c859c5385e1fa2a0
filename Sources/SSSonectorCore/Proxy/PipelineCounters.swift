import Locking
import StageABI
import Synchronization

/// The host's own figures for one pipeline (`/stats` "connections", docs/operations.md): the
/// `PipelineFigure` atomics, and the per-reason rejection table, which is touched only when a
/// connection is rejected.
public final class PipelineCounters: Sendable {
    public let figures = FigureValues<PipelineFigure>()
    private let rejections = Locked<[String: UInt64]>([:])

    public init() {}

    /// Counts an accepted connection (the listener's `AdmissionGate` let it in).
    func opened() {
        let now = figures.change(.active, by: 1)
        figures.add(.total)
        figures.raise(.peak, to: now)
    }

    func closed(bytesUp up: UInt64, bytesDown down: UInt64) {
        figures.subtract(.active)
        figures.add(.bytesUp, up)
        figures.add(.bytesDown, down)
    }

    func rejected(_ reason: String) {
        rejections.withLock { $0[reason, default: 0] += 1 }
    }

    func connected(latency: UInt64) {
        figures.add(.connects)
        figures.add(.connectLatency, latency)
    }

    /// Rejections by reason name (`rate_limited`, `overload`, ...).
    public var rejectedByReason: [String: UInt64] { rejections.withLock { $0 } }

    /// Average latency of successful connects, in seconds.
    public var averageConnectLatencySeconds: Double {
        let n = figures[.connects]
        return n == 0 ? 0 : Double(figures[.connectLatency]) / Double(n) / 1e9
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
