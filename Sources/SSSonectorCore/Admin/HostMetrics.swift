import Locking
import Prometheus

/// The host's own metrics, refreshed from the figure atomics at scrape time (the hot path only
/// touches atomics). Every series comes from a figure's declaration (`FigureName`): the same
/// declaration gives its `/stats` key.
final class HostMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    /// Series by metric name and labels (a reload keeps the name and the series).
    private let gauges = Locked<[String: Gauge]>([:])
    private let counters = Locked<[String: Counter]>([:])
    /// Counter values already exported, by the figure set they came from: a reloaded pipeline's
    /// figures start again at zero, so each set is tracked apart and only differences are added.
    private let exported = Locked<[String: UInt64]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Copies the current figures into the Prometheus series.
    func refresh(_ runtimes: [PipelineRuntime], connectors: [String: ReverseConnector] = [:], relay: RelayHub? = nil) {
        for (pipeline, connector) in connectors {
            export(connector.figures, labels: [("pipeline", pipeline)], origin: "\(ObjectIdentifier(connector).hashValue)")
        }
        if let relay {
            export(relay.figures, labels: [], origin: "relay")
            for (service, figures) in relay.serviceFigures {
                export(figures, labels: [("service", service)], origin: "relay.\(service)")
            }
        }
        for runtime in runtimes {
            let labels = [("pipeline", runtime.name)]
            let origin = "\(ObjectIdentifier(runtime).hashValue)"
            export(runtime.counters.figures, labels: labels, origin: origin)
            for (reason, count) in runtime.counters.rejectedByReason {
                let series = counter("connections_rejected_total", "Client connections rejected, by reason.",
                                     labels + [("reason", reason)])
                advance(series, "\(origin).rejected.\(reason)", to: count, scale: 1)
            }
            for entry in runtime.upstreams.current.entries {
                let upstream = labels + [("upstream", entry.name)]
                let origin = "\(ObjectIdentifier(entry.counters).hashValue)"
                export(entry.counters.figures, labels: upstream, origin: origin)
                guard runtime.poolSettings(for: entry).enabled else { continue }
                export(entry.counters.pool, labels: upstream, origin: origin)
                export(entry.counters.evictions, labels: upstream, origin: origin)
            }
        }
    }

    private func export<List: FigureList>(_ values: FigureValues<List>, labels: [(String, String)], origin: String) {
        for figure in List.allCases {
            let n = figure.name
            let all = labels + n.labels
            switch n.kind {
            case .gauge:
                gauge(n.metric, n.help, all).set(to: values.exported(figure))
            case .counter:
                let key = "\(origin).\(n.metric).\(n.labels.map { "\($0.0)=\($0.1)" }.joined(separator: ","))"
                advance(counter(n.metric, n.help, all), key, to: values[figure], scale: n.scale)
            }
        }
    }

    private static func key(_ metric: String, _ labels: [(String, String)]) -> String {
        metric + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func descriptor(_ metric: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: "sssonector_" + metric, unitName: "", helpText: help)
    }

    private func gauge(_ metric: String, _ help: String, _ labels: [(String, String)]) -> Gauge {
        series(in: gauges, metric, help, labels) { registry.makeGauge(descriptor: $0, labels: $1) }
    }

    private func counter(_ metric: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        series(in: counters, metric, help, labels) { registry.makeCounter(descriptor: $0, labels: $1) }
    }

    /// The series for `metric` with `labels`, made once.
    private func series<Series>(in table: Locked<[String: Series]>, _ metric: String, _ help: String, _ labels: [(String, String)],
                                make: (MetricNameDescriptor, [(String, String)]) -> Series) -> Series {
        table.withLock { known in
            let key = Self.key(metric, labels)
            if let existing = known[key] { return existing }
            let made = make(Self.descriptor(metric, help), labels)
            known[key] = made
            return made
        }
    }

    private func advance(_ counter: Counter, _ key: String, to value: UInt64, scale: Double) {
        let delta = exported.withLock { table -> UInt64 in
            let old = table[key] ?? 0
            table[key] = max(old, value)
            return value > old ? value - old : 0
        }
        guard delta > 0 else { return }
        if scale == 1 { counter.increment(by: Int64(clamping: delta)) } else { counter.increment(by: Double(delta) * scale) }
    }
}
