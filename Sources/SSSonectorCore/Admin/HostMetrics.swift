import Locking
import Prometheus
import Synchronization

/// The host's own metrics per pipeline, refreshed from `PipelineCounters` at scrape time (the
/// hot path only touches atomics).
final class HostMetrics: Sendable {
    private struct PipelineSeries: Sendable {
        let active: Gauge
        let peak: Gauge
        let total: Counter
        let failedConnects: Counter
        let bytesUp: Counter
        let bytesDown: Counter
        let upstreamActive: Gauge
    }

    private let registry: PrometheusCollectorRegistry
    /// Series by pipeline name (a reload keeps the name and the series).
    private let series = Locked<[String: PipelineSeries]>([:])
    /// Counter values already exported, to add only the difference.
    private let exported = Locked<[String: UInt64]>([:])
    private let rejected = Locked<[String: Counter]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    private func series(for name: String) -> PipelineSeries {
        series.withLock { table in
            if let known = table[name] { return known }
            let l = [("pipeline", name)]
            func d(_ metric: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(metricName: metric, unitName: "", helpText: help)
            }
            let made = PipelineSeries(
                active: registry.makeGauge(descriptor: d("sssonector_connections_active", "Open client connections."), labels: l),
                peak: registry.makeGauge(descriptor: d("sssonector_connections_peak", "Most connections open at once."), labels: l),
                total: registry.makeCounter(descriptor: d("sssonector_connections_total", "Client connections accepted."), labels: l),
                failedConnects: registry.makeCounter(descriptor: d("sssonector_upstream_connect_failures_total", "Failed upstream connect attempts."), labels: l),
                bytesUp: registry.makeCounter(descriptor: d("sssonector_bytes_up_total", "Bytes relayed from clients to upstreams."), labels: l),
                bytesDown: registry.makeCounter(descriptor: d("sssonector_bytes_down_total", "Bytes relayed from upstreams to clients."), labels: l),
                upstreamActive: registry.makeGauge(descriptor: d("sssonector_upstreams", "Upstreams in the set."), labels: l))
            table[name] = made
            return made
        }
    }

    /// Copies the current figures into the Prometheus series.
    func refresh(_ runtimes: [PipelineRuntime]) {
        for runtime in runtimes {
            let s = series(for: runtime.name)
            // Counters of a reloaded pipeline start again at zero: track each runtime apart.
            let key = "\(runtime.name).\(ObjectIdentifier(runtime).hashValue)"
            let c = runtime.counters
            s.active.set(to: Double(c.active.load(ordering: .relaxed)))
            s.peak.set(to: Double(c.peak.load(ordering: .relaxed)))
            s.upstreamActive.set(to: Double(runtime.upstreams.current.count))
            advance(s.total, "\(key).total", to: c.total.load(ordering: .relaxed))
            advance(s.failedConnects, "\(key).failed", to: c.failedConnects.load(ordering: .relaxed))
            advance(s.bytesUp, "\(key).up", to: c.bytesUp.load(ordering: .relaxed))
            advance(s.bytesDown, "\(key).down", to: c.bytesDown.load(ordering: .relaxed))
            for (reason, count) in c.rejectedByReason {
                let counter = rejected.withLock { table in
                    if let existing = table["\(runtime.name).\(reason)"] { return existing }
                    let made = registry.makeCounter(
                        descriptor: MetricNameDescriptor(metricName: "sssonector_connections_rejected_total", unitName: "",
                                                         helpText: "Client connections rejected, by reason."),
                        labels: [("pipeline", runtime.name), ("reason", reason)])
                    table["\(runtime.name).\(reason)"] = made
                    return made
                }
                advance(counter, "\(key).rejected.\(reason)", to: count)
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
