import ConfigValues

/// The `/stats` document (docs/operations.md, "Admin API"): per pipeline the host's connection figures, its upstreams,
/// and each stage's own stats under the stage's name.
enum StatsDocument {
    /// Builds the document; `stageStats` returns a stage's stats JSON (run on the control thread).
    static func build(_ runtimes: [PipelineRuntime], stageStats: (StageInstance) -> String?) -> JSONValue {
        var pipelines: [(String, JSONValue)] = []
        for runtime in runtimes {
            let c = runtime.counters
            var stages: [(String, JSONValue)] = []
            for stage in runtime.chain.stages {
                guard let text = stageStats(stage), let value = try? JSONValue.parse(text) else { continue }
                stages.append((stage.name, value))
            }
            let snapshot = runtime.upstreams.current
            let upstreams: [JSONValue] = snapshot.entries.map { entry in
                [
                    "name": .string(entry.name), "address": .string(entry.address), "weight": .int(entry.weight),
                    "healthy": .bool(healthy(entry.name, stages: stages)), "draining": .bool(entry.draining),
                    "active": .int(entry.counters.active.load(ordering: .relaxed)),
                    "total": .int(entry.counters.total.load(ordering: .relaxed)),
                ]
            }
            let connections: JSONValue = [
                "active": .int(c.active.load(ordering: .relaxed)), "peak": .int(c.peak.load(ordering: .relaxed)),
                "total": .int(c.total.load(ordering: .relaxed)),
                "rejected": .object(c.rejectedByReason.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
                "failed_connects": .int(c.failedConnects.load(ordering: .relaxed)),
                "bytes_up": .int(c.bytesUp.load(ordering: .relaxed)), "bytes_down": .int(c.bytesDown.load(ordering: .relaxed)),
                "avg_connect_latency_seconds": .number(c.averageConnectLatencySeconds),
                "accept_errors": .int(c.acceptErrors.load(ordering: .relaxed)),
            ]
            pipelines.append((runtime.name, ["connections": connections, "upstreams": .array(upstreams), "stages": .object(stages)]))
        }
        return ["pipelines": .object(pipelines)]
    }

    /// The host does not probe upstreams itself: an upstream is healthy unless a stage that
    /// tracks health (a balancer) reports `upstreams.NAME.healthy: false`.
    private static func healthy(_ name: String, stages: [(String, JSONValue)]) -> Bool {
        for (_, stats) in stages {
            if case .bool(let h)? = stats["upstreams"]?[name]?["healthy"] { return h }
        }
        return true
    }
}
