import ConfigValues

/// `connection.pool` and `upstreams[].pool` (docs/pipeline-reference.md, "Warm upstream pool"):
/// upstream connections opened (and TLS-handshaken) ahead of demand, each handed to one client.
/// A pool exists per upstream and event loop; `min_idle` and `max_idle` count per pool.
public struct PoolSettings: Sendable, Equatable {
    public var enabled = false
    /// Idle connections kept whatever the demand (opened at start).
    public var minIdle = 0
    /// Idle connections at most, whatever the demand.
    public var maxIdle = 16
    /// An idle connection older than this (less up to 10% jitter) is closed.
    public var maxIdleTime: UInt64 = 30_000_000_000
    /// Target = ceil(take rate × connect-and-handshake time × headroom).
    public var headroom = 1.5
    /// The upstream talks first (SMTP, MySQL, SSH): its greeting is kept and delivered to the
    /// client first, instead of counting as unexpected data.
    public var serverSpeaksFirst = false
    /// The most greeting bytes kept per idle connection.
    public var greetingLimit: UInt64 = 4096
    /// Pipeline-wide: idle plus opening connections over every upstream and loop.
    public var maxTotal = 1024

    public init() {}

    /// Server timers start at connect (MySQL's connect_timeout is 10 s, sshd's LoginGraceTime
    /// 120 s): a greeting connection idles at most this long.
    public static let greetingMaxIdleTime: UInt64 = 5_000_000_000

    /// The idle time in force: `max_idle_time`, capped for server-speaks-first upstreams.
    public var effectiveMaxIdleTime: UInt64 {
        serverSpeaksFirst ? min(maxIdleTime, Self.greetingMaxIdleTime) : maxIdleTime
    }

    /// Reads a pool object over `base` (the pipeline's settings for an upstream's override).
    /// `pipelineLevel` allows the pipeline-wide keys.
    static func decode(_ o: ConfigObject, over base: PoolSettings, pipelineLevel: Bool) throws(ConfigError) -> PoolSettings {
        var p = base
        p.enabled = try o.bool("enabled", default: p.enabled)
        p.minIdle = try o.int("min_idle", default: p.minIdle, in: 0...1024)
        p.maxIdle = try o.int("max_idle", default: p.maxIdle, in: 1...1024)
        p.maxIdleTime = try o.duration("max_idle_time", default: p.maxIdleTime, minimum: 10_000_000, maximum: 86_400_000_000_000)
        p.headroom = try o.double("headroom", default: p.headroom, in: 1...16, rangeText: "a number in 1...16")
        p.serverSpeaksFirst = try o.bool("server_speaks_first", default: p.serverSpeaksFirst)
        p.greetingLimit = try o.size("greeting_limit", default: p.greetingLimit, in: 1...65536)
        if pipelineLevel {
            p.maxTotal = try o.int("max_total", default: p.maxTotal, in: 1...1_000_000)
        }
        try o.finish()
        if p.minIdle > p.maxIdle {
            throw ConfigError(path: o.path(of: "min_idle"), "min_idle \(p.minIdle) is above max_idle \(p.maxIdle)")
        }
        return p
    }
}
