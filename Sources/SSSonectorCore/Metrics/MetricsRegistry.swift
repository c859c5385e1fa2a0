import Locking
import Prometheus
import Synchronization

/// The kinds of metric a stage (or the host) may define.
public enum MetricKind: UInt32, Sendable {
    case counter = 0, gauge = 1, histogram = 2
}

/// Metrics defined by the host and by stages through the `metric_*` services, kept in a
/// swift-prometheus registry (which renders `/metrics`).
///
/// Definition takes a lock and happens off the hot path (control thread). Updates by id take
/// no lock: ids index a fixed, append-only table whose length is published atomically, and the
/// swift-prometheus objects behind it are atomics.
public final class MetricsRegistry: @unchecked Sendable {  // `slots` is append-only, published via `published`
    /// One defined series: name, labels and its storage.
    public struct Series: Sendable {
        public let kind: MetricKind
        public let name: String
        public let help: String
        public let labels: [(String, String)]
        let cell: MetricCell
    }

    /// The swift-prometheus registry that renders the text format.
    public let prometheus = PrometheusCollectorRegistry()
    private let state = Locked<(series: [Series], index: [String: UInt32])>(([], [:]))
    /// Up to `capacity` series; a definition past it gets an id whose updates do nothing.
    static let capacity = 16_384
    private let slots: UnsafeMutablePointer<MetricCell?>
    private let published = Atomic<Int>(0)

    public init() {
        slots = .allocate(capacity: Self.capacity)
        slots.initialize(repeating: nil, count: Self.capacity)
    }

    deinit {
        slots.deinitialize(count: Self.capacity)
        slots.deallocate()
    }

    /// Histogram buckets in base units (seconds or bytes).
    static let buckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    ]

    /// Defines (or finds) a series. Names get the `sssonector_` prefix when they lack it.
    public func define(kind: MetricKind, name: String, help: String, labels: [(String, String)]) -> UInt32 {
        let fullName = name.hasPrefix("sssonector_") ? name : "sssonector_" + name
        let key = fullName + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        return state.withLock { state in
            if let id = state.index[key] { return id }
            let id = UInt32(state.series.count)
            let cell: MetricCell
            switch kind {
            case .counter: cell = .counter(prometheus.makeCounter(descriptor: MetricNameDescriptor(metricName: fullName, unitName: "", helpText: help), labels: labels))
            case .gauge: cell = .gauge(prometheus.makeGauge(descriptor: MetricNameDescriptor(metricName: fullName, unitName: "", helpText: help), labels: labels))
            case .histogram:
                cell = .histogram(prometheus.makeValueHistogram(descriptor: MetricNameDescriptor(metricName: fullName, unitName: "", helpText: help), labels: labels, buckets: Self.buckets))
            }
            state.series.append(Series(kind: kind, name: fullName, help: help, labels: labels, cell: cell))
            state.index[key] = id
            if Int(id) < Self.capacity {
                slots[Int(id)] = cell  // written before the count that makes it visible
                published.store(Int(id) + 1, ordering: .releasing)
            }
            return id
        }
    }

    @inline(__always)
    private func cell(_ id: UInt32) -> MetricCell? {
        Int(id) < published.load(ordering: .acquiring) ? slots[Int(id)] : nil
    }

    public func add(_ id: UInt32, _ delta: Int64) { cell(id)?.add(delta) }
    public func set(_ id: UInt32, _ value: Double) { cell(id)?.set(value) }
    public func observe(_ id: UInt32, _ value: Double) { cell(id)?.observe(value) }

    /// Every series defined so far, in definition order.
    public func snapshot() -> [Series] { state.withLock { $0.series } }

    /// The Prometheus text exposition of every metric.
    public func prometheusText() -> String { prometheus.emitToString() }
}

/// One series' swift-prometheus object.
enum MetricCell: Sendable {
    case counter(Counter)
    case gauge(Gauge)
    case histogram(ValueHistogram)

    func add(_ delta: Int64) {
        switch self {
        case .counter(let c): if delta > 0 { c.increment(by: delta) }
        case .gauge(let g): g.increment(by: Double(delta))
        case .histogram(let h): h.record(Double(delta))
        }
    }

    func set(_ value: Double) {
        switch self {
        case .gauge(let g): g.set(to: value)
        case .counter, .histogram: observe(value)
        }
    }

    func observe(_ value: Double) {
        switch self {
        case .histogram(let h): h.record(value)
        case .gauge(let g): g.set(to: value)
        case .counter(let c): if value > 0 { c.increment(by: value) }
        }
    }
}
