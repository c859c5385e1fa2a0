/// The host's figures for one pipeline (`/stats` "connections", docs/operations.md).
public enum PipelineFigure: Int, FigureList {
    case active, peak, total, failedConnects, connects, connectLatency, bytesUp, bytesDown, acceptErrors,
         pending, openTimeouts, lateVerdicts

    public var name: FigureName {
        switch self {
        case .active: FigureName("active", .gauge, metric: "connections_active", help: "Open client connections.")
        case .peak: FigureName("peak", .gauge, metric: "connections_peak", help: "Most client connections open at once.")
        case .total: FigureName("total", .counter, metric: "connections_total", help: "Client connections accepted.")
        case .failedConnects:
            FigureName("failed_connects", .counter, metric: "upstream_connect_failures_total", help: "Failed upstream connect attempts.")
        case .connects:
            FigureName("connects", .counter, metric: "upstream_connects_total", help: "Successful upstream connects (warm-pool hits included).")
        case .connectLatency:
            FigureName("connect_latency_seconds_total", .counter, metric: "upstream_connect_latency_seconds_total", scale: 1e-9,
                       help: "Time from the first connect attempt to connected, summed over successful connects.")
        case .bytesUp: FigureName("bytes_up", .counter, metric: "bytes_up_total", help: "Bytes relayed from clients to upstreams.")
        case .bytesDown: FigureName("bytes_down", .counter, metric: "bytes_down_total", help: "Bytes relayed from upstreams to clients.")
        case .acceptErrors:
            FigureName("accept_errors", .counter, metric: "accept_errors_total", help: "Failed accept calls (each paused accepting).")
        case .pending:
            FigureName("pending", .gauge, metric: "connections_pending", help: "Connections waiting for a stage's pending open verdict.")
        case .openTimeouts:
            FigureName("open_timeouts", .counter, metric: "open_timeouts_total",
                       help: "Pending open verdicts that did not come in time: the stage's fallback applied.")
        case .lateVerdicts:
            FigureName("late_verdicts", .counter, metric: "late_verdicts_total",
                       help: "Posted open verdicts that found no wait to settle (after the timeout, or not the stage waited for).")
        }
    }
}

/// The host's figures for one upstream (`/stats` "upstreams[]").
public enum UpstreamFigure: Int, FigureList {
    case active, total

    public var name: FigureName {
        switch self {
        case .active: FigureName("active", .gauge, metric: "upstream_active", help: "Open relayed connections to the upstream.")
        case .total: FigureName("total", .counter, metric: "upstream_connections_total", help: "Relayed connections the upstream has taken.")
        }
    }
}

/// The warm pool's figures for one upstream, summed over its event loops (`/stats`
/// "upstreams[].pool", docs/operations.md, "Warm upstream pool").
public enum PoolFigure: Int, FigureList {
    case idle, target, refilling, hits, misses, refills, refillFailures, setupTime, greetings

    public var name: FigureName {
        switch self {
        case .idle: FigureName("idle", .gauge, metric: "pool_idle", help: "Warm connections ready for a client.")
        case .target: FigureName("target", .gauge, metric: "pool_target", help: "Warm connections the pool aims to hold now.")
        case .refilling: FigureName("refilling", .gauge, metric: "pool_refills_in_flight", help: "Warm connections being opened.")
        case .hits: FigureName("hits", .counter, metric: "pool_checkouts_total", labels: [("result", "hit")], help: "Connections served from the pool, by result.")
        case .misses: FigureName("misses", .counter, metric: "pool_checkouts_total", labels: [("result", "miss")], help: "Connections served from the pool, by result.")
        case .refills: FigureName("refills", .counter, metric: "pool_refills_total", labels: [("result", "ok")], help: "Warm connections opened, by result.")
        case .refillFailures:
            FigureName("refill_failures", .counter, metric: "pool_refills_total", labels: [("result", "failed")], help: "Warm connections opened, by result.")
        case .setupTime:
            FigureName("setup_seconds_total", .counter, metric: "pool_setup_seconds_total", scale: 1e-9,
                       help: "Connect plus TLS handshake time of the pool's successful refills, summed.")
        case .greetings:
            FigureName("greeting_bytes", .counter, metric: "pool_greeting_bytes_total", help: "Server-first greeting bytes kept and delivered to clients.")
        }
    }
}

/// Why the pool closed an idle connection. Each reason's name is its raw text, written once.
public enum PoolEviction: Int, FigureList {
    case idleTimeout, peerClosed, unexpectedData, shrink, removed, unhealthy, circuitOpen, shutdown

    /// The reason's name in `/stats` ("evictions") and the metric's `reason` label.
    public var reason: String {
        switch self {
        case .idleTimeout: "idle_timeout"
        case .peerClosed: "peer_closed"
        case .unexpectedData: "unexpected_data"
        case .shrink: "shrink"
        case .removed: "removed"
        case .unhealthy: "unhealthy"
        case .circuitOpen: "circuit_open"
        case .shutdown: "shutdown"
        }
    }

    public var name: FigureName {
        FigureName(reason, .counter, metric: "pool_evictions_total", labels: [("reason", reason)],
                   help: "Idle warm connections closed, by reason.")
    }
}
