import Prometheus
import Synchronization

/// The host's own metrics per pipeline, refreshed from `PipelineCounters` at scrape time (the
/// hot path only touches atomics).
final class HostMetrics: Sendable {
    private struct PipelineSeries: Sendable {
        let runtime: PipelineRuntime
        let active: Gauge
        let peak: Gauge
        let total: Counter
        let failedConnects: Counter
        let bytesUp: Counter
        let bytesDown: Counter
        let upstreamActive: Gauge
    }

    private let registry: PrometheusCollectorRegistry
    private let series: [PipelineSeries]
    /// Counter values already exported, to add only the difference.
    private let exported = Mutex<[String: UInt64]>([:])
    private let rejected = Mutex<[String: Counter]>([:])

    init(registry: PrometheusCollectorRegistry, runtimes: [PipelineRuntime]) {
        self.registry = registry
        series = runtimes.map { r in
            let l = [("pipeline", r.name)]
            return PipelineSeries(
                runtime: r,
                active: registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "sssonector_connections_active", unitName: "", helpText: "Open client connections."), labels: l),
                peak: registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "sssonector_connections_peak", unitName: "", helpText: "Most connections open at once."), labels: l),
                total: registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "sssonector_connections_total", unitName: "", helpText: "Client connections accepted."), labels: l),
                failedConnects: registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "sssonector_upstream_connect_failures_total", unitName: "", helpText: "Failed upstream connect attempts."), labels: l),
                bytesUp: registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "sssonector_bytes_up_total", unitName: "", helpText: "Bytes relayed from clients to upstreams."), labels: l),
                bytesDown: registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "sssonector_bytes_down_total", unitName: "", helpText: "Bytes relayed from upstreams to clients."), labels: l),
                upstreamActive: registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "sssonector_upstreams", unitName: "", helpText: "Upstreams in the set."), labels: l))
        }
    }

    /// Copies the current figures into the Prometheus series.
    func refresh() {
        for s in series {
            let c = s.runtime.counters
            s.active.set(to: Double(c.active.load(ordering: .relaxed)))
            s.peak.set(to: Double(c.peak.load(ordering: .relaxed)))
            s.upstreamActive.set(to: Double(s.runtime.upstreams.current.count))
            advance(s.total, "\(s.runtime.name).total", to: c.total.load(ordering: .relaxed))
            advance(s.failedConnects, "\(s.runtime.name).failed", to: c.failedConnects.load(ordering: .relaxed))
            advance(s.bytesUp, "\(s.runtime.name).up", to: c.bytesUp.load(ordering: .relaxed))
            advance(s.bytesDown, "\(s.runtime.name).down", to: c.bytesDown.load(ordering: .relaxed))
            for (reason, count) in c.rejectedByReason {
                let counter = rejected.withLock { table in
                    if let existing = table["\(s.runtime.name).\(reason)"] { return existing }
                    let made = registry.makeCounter(
                        descriptor: MetricNameDescriptor(metricName: "sssonector_connections_rejected_total", unitName: "",
                                                         helpText: "Client connections rejected, by reason."),
                        labels: [("pipeline", s.runtime.name), ("reason", reason)])
                    table["\(s.runtime.name).\(reason)"] = made
                    return made
                }
                advance(counter, "\(s.runtime.name).rejected.\(reason)", to: count)
            }
        }
    }

    private func advance(_ counter: Counter, _ key: String, to value: UInt64) {
        let delta = exported.withLock { table -> UInt64 in
            let old = table[key] ?? 0
            table[key] = max(old, value)
            return value > old ? value - old : 0
        }
        if delta > 0 { counter.increment(by: Int64(clamping: delta)) }
    }
}
