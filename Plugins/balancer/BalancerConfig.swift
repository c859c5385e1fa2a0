import StageKit

/// The `balancer` stage's config (docs/pipeline-reference.md, "Stock stages").
struct BalancerConfig: Sendable {
    enum Strategy: String, Sendable { case roundRobin = "round_robin", leastConnections = "least_connections", weightedRoundRobin = "weighted_round_robin" }

    var strategy: Strategy
    /// 0: no active health checks.
    var healthCheckInterval: UInt64
    var healthCheckTimeout: UInt64
    var healthyThreshold: Int
    var unhealthyThreshold: Int
    var maxRetries: Int
    var retryTimeout: UInt64

    init(_ setup: StageSetup) throws {
        let c = try setup.configObject()
        strategy = Strategy(rawValue: try c.choice("strategy", ["round_robin", "least_connections", "weighted_round_robin"],
                                                   default: "round_robin"))!
        healthCheckInterval = try c.duration("health_check", default: 0)
        if healthCheckInterval != 0 && healthCheckInterval < 10_000_000 {
            throw ConfigError(path: "health_check", "expected \"0s\" (off) or at least 10ms")
        }
        healthCheckTimeout = try c.duration("health_check_timeout", default: min(max(healthCheckInterval, 10_000_000), 1_000_000_000),
                                            minimum: 1_000_000)
        healthyThreshold = try c.int("healthy_threshold", default: 2, in: 1...1000)
        unhealthyThreshold = try c.int("unhealthy_threshold", default: 3, in: 1...1000)
        maxRetries = try c.int("max_retries", default: 2, in: 0...100)
        retryTimeout = try c.duration("retry_timeout", default: 1_000_000_000)
        try c.finish()
        if strategy == .weightedRoundRobin, !setup.upstreams.isEmpty, setup.upstreams.allSatisfy({ $0.weight == 0 }) {
            throw ConfigError(path: "strategy", "weighted_round_robin with every upstream weight 0 can choose nothing")
        }
    }
}
