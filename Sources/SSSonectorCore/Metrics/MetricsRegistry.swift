import Synchronization

/// The kinds of metric a stage (or the host) may define.
public enum MetricKind: UInt32, Sendable {
    case counter = 0, gauge = 1, histogram = 2
}

/// Metrics defined by the host and by stages through the `metric_*` services.
///
/// Definition takes a lock and happens off the hot path (control thread). Updates by id are
/// lock-free: ids index an append-only table of atomic cells that is published as a whole.
public final class MetricsRegistry: Sendable {
    /// One defined series: name, labels and its storage.
    public struct Series: Sendable {
        public let kind: MetricKind
        public let name: String
        public let help: String
        public let labels: [(String, String)]
        let cell: MetricCell
    }

    private struct State {
        var series: [Series] = []
        var index: [String: UInt32] = [:]
    }

    private let state = Mutex(State())
    /// Fast path for updates: a published copy of the cells (append-only).
    private let cells = Mutex<[MetricCell]>([])

    public init() {}

    /// Defines (or finds) a series. Names get the `sssonector_` prefix when they lack it.
    public func define(kind: MetricKind, name: String, help: String, labels: [(String, String)]) -> UInt32 {
        let fullName = name.hasPrefix("sssonector_") ? name : "sssonector_" + name
        let key = fullName + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        return state.withLock { state in
            if let id = state.index[key] { return id }
            let id = UInt32(state.series.count)
            let cell = MetricCell(kind: kind)
            state.series.append(Series(kind: kind, name: fullName, help: help, labels: labels, cell: cell))
            state.index[key] = id
            cells.withLock { $0.append(cell) }
            return id
        }
    }

    @inline(__always) private func cell(_ id: UInt32) -> MetricCell? {
        cells.withLock { Int(id) < $0.count ? $0[Int(id)] : nil }
    }

    public func add(_ id: UInt32, _ delta: Int64) { cell(id)?.add(delta) }
    public func set(_ id: UInt32, _ value: Double) { cell(id)?.set(value) }
    public func observe(_ id: UInt32, _ value: Double) { cell(id)?.observe(value) }

    /// Every series defined so far, in definition order.
    public func snapshot() -> [Series] { state.withLock { $0.series } }
}

/// Storage for one series. Counters and gauges keep a Double's bits in one atomic word;
/// histograms keep their buckets under a lock (they are observed per connection, not per chunk).
final class MetricCell: Sendable {
    static let bucketBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
        5, 10, 30, 60, 300,
    ]
    struct Histogram {
        var buckets: [UInt64] = Array(repeating: 0, count: MetricCell.bucketBounds.count)
        var count: UInt64 = 0
        var sum: Double = 0
    }

    let kind: MetricKind
    private let bits = Atomic<UInt64>(0)
    private let histogram = Mutex(Histogram())

    init(kind: MetricKind) { self.kind = kind }

    func add(_ delta: Int64) {
        var old = bits.load(ordering: .relaxed)
        while true {
            let new = (Double(bitPattern: old) + Double(delta)).bitPattern
            let (done, current) = bits.compareExchange(expected: old, desired: new, ordering: .relaxed)
            if done { return }
            old = current
        }
    }

    func set(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }

    func observe(_ value: Double) {
        guard kind == .histogram else { return set(value) }
        histogram.withLock { h in
            if let i = Self.bucketBounds.firstIndex(where: { value <= $0 }) { h.buckets[i] += 1 }
            h.count += 1
            h.sum += value
        }
    }

    var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
    /// Per-bucket (not cumulative) counts aligned with `bucketBounds`, the count and the sum.
    var histogramSnapshot: Histogram { histogram.withLock { $0 } }
}
