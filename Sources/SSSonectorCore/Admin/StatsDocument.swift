import ConfigValues
import StageABI

/// The `/stats` document (docs/operations.md, "Admin API"): per pipeline the host's connection
/// figures, its upstreams (with their warm pools), and each stage's own stats under the
/// stage's name. The figures' keys come from their declarations (`PipelineFigure`,
/// `UpstreamFigure`, `PoolFigure`, `PoolEviction`).
enum StatsDocument {
    /// Builds the document; `stageStats` returns a stage's stats JSON (run on the control thread).
    /// `connectors` are the connector pipelines' (by name: "reverse"), `relay` the host's relay
    /// ("relay", docs/reverse-tunnel.md), `listeners` each pipeline's listener ("listener").
    static func build(_ runtimes: [PipelineRuntime], listeners: [String: ListenerStatus] = [:],
                      connectors: [String: ReverseConnector] = [:], relay: RelayHub? = nil,
                      stageStats: (StageInstance) -> String?) -> JSONValue {
        var pipelines: [(String, JSONValue)] = []
        for runtime in runtimes {
            let c = runtime.counters
            let snapshot = runtime.upstreams.current
            // First: health comes from the stages (ABI 1.2), and a balancer notes the live
            // per-upstream counts it then reports in its own stats.
            let status = runtime.chain.upstreamStatus(of: snapshot, now: runtime.clock.monotonicNanoseconds())
            var stages: [(String, JSONValue)] = []
            for stage in runtime.chain.stages {
                guard let text = stageStats(stage), let value = try? JSONValue.parse(text) else { continue }
                stages.append((stage.name, value))
            }
            let upstreams: [JSONValue] = snapshot.entries.enumerated().map { i, entry in
                var fields: [(String, JSONValue)] = [
                    ("name", .string(entry.name)), ("address", .string(entry.address)), ("weight", .int(entry.weight)),
                    ("healthy", .bool(status[i] & UInt8(SSS_STATUS_UNHEALTHY) == 0)),
                    ("paused", .bool(status[i] & UInt8(SSS_STATUS_PAUSED) != 0)),
                    ("draining", .bool(entry.draining)),
                ]
                fields += entry.counters.figures.json
                if runtime.poolSettings(for: entry).enabled {
                    fields.append(("pool", .object(entry.counters.pool.json + [("evictions", .object(entry.counters.evictions.json))])))
                }
                return .object(fields)
            }
            let connections = JSONValue.object(c.figures.json + [
                ("rejected", .object(c.rejectedByReason.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("avg_connect_latency_seconds", .number(c.averageConnectLatencySeconds)),
            ])
            // The chain in order, with each stage's type: what a reader (the status page) needs
            // to know which stage's figures and control commands it is looking at.
            let chain: [JSONValue] = runtime.chain.stages.map { ["name": .string($0.name), "type": .string($0.type.name)] }
            var entry: [(String, JSONValue)] = []
            if let listener = listeners[runtime.name] { entry.append(("listener", listener.json)) }
            entry += [("connections", connections), ("upstreams", .array(upstreams)), ("stages", .object(stages)),
                      ("chain", .array(chain))]
            if let connector = connectors[runtime.name] {
                let settings = connector.settings
                entry.append(("reverse", .object([
                    ("relay", .string(settings.relay.description)), ("service", .string(settings.service)),
                    ("connections", .int(Int64(settings.connections))),
                ] + connector.figures.json)))
            }
            pipelines.append((runtime.name, .object(entry)))
        }
        var document: [(String, JSONValue)] = [("pipelines", .object(pipelines))]
        if let relay { document.append(("relay", relay.json)) }
        return .object(document)
    }
}
