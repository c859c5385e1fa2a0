import SharedBudget
import StageKit

/// The `ratelimit` stage's config (docs/pipeline-reference.md, "Stock stages"), validated with JSON paths.
struct RateLimitConfig: Sendable {
    enum Key: String, Sendable { case clientIP = "client_ip", global, listener }

    struct Limit: Sendable, Equatable {
        var rate: Double
        var burst: Double
    }

    var defaultLimit: Limit
    var cleanupInterval: UInt64
    var key: Key
    /// Exact keys (an IP, or any key for `global`/`listener`).
    var exactOverrides: [String: Limit]
    /// CIDR blocks, most specific first.
    var blockOverrides: [(CIDRBlock, Limit)]
    /// Per-connection byte rate and burst, each direction.
    var bandwidth: Limit?
    var maxKeys: Int
    /// `shared`: one budget per key across every host naming the same Redis and prefix.
    var shared: SharedSettings?

    /// The `shared` block (docs/shared-rate-limit.md).
    struct SharedSettings: Sendable {
        enum OnError: String, Sendable { case local, allow, deny }
        var redis: RedisEndpoint
        var keyPrefix: String
        /// How long an admission waits for Redis before `on_error` applies.
        var timeout: UInt64
        var onError: OnError
        /// Errors or timeouts in a row that stop the asking, and how long until a probe.
        var circuitFailures: Int
        var probeInterval: UInt64

        init(_ o: ConfigObject) throws {
            guard let text = try o.string("redis") else {
                throw ConfigError(path: o.path(of: "redis"), "required: \"host:port\" or \"unix:/path\"")
            }
            guard let endpoint = RedisEndpoint(text) else {
                throw ConfigError(path: o.path(of: "redis"), "expected \"host:port\" or \"unix:/path\", got \"\(text)\"")
            }
            redis = endpoint
            keyPrefix = try o.string("key_prefix") ?? "sss:rl:"
            timeout = try o.duration("timeout", default: 10_000_000, minimum: 1_000_000, maximum: 10_000_000_000)
            onError = OnError(rawValue: try o.choice("on_error", ["local", "allow", "deny"], default: "local"))!
            circuitFailures = try o.int("circuit_failures", default: 5, in: 1...1000)
            probeInterval = try o.duration("probe_interval", default: 1_000_000_000, minimum: 1_000_000, maximum: 600_000_000_000)
            try o.finish()
        }
    }

    init(_ setup: StageSetup) throws {
        let c = try setup.configObject()
        let rate = try c.double("default_rate", in: Double.leastNonzeroMagnitude...1e12, rangeText: "a rate > 0 (tokens per second)")
        guard let rate else { throw ConfigError(path: "default_rate", "required: tokens per second, > 0") }
        let burst = try c.double("default_burst", default: max(1, rate.rounded(.up)), in: 1...1e12, rangeText: "a burst >= 1")
        defaultLimit = Limit(rate: rate, burst: burst)
        cleanupInterval = try c.duration("cleanup_time", default: 60_000_000_000, minimum: 1_000_000)
        key = Key(rawValue: try c.choice("key", ["client_ip", "global", "listener"], default: "client_ip"))!
        maxKeys = try c.int("max_keys", default: 100_000, in: 1...10_000_000)
        exactOverrides = [:]
        blockOverrides = []
        if let overrides = try c.object("overrides") {
            for (name, value) in overrides.members {
                let o = try ConfigObject(value, path: overrides.path(of: name))
                let r = try o.double("rate", in: Double.leastNonzeroMagnitude...1e12, rangeText: "a rate > 0")
                guard let r else { throw ConfigError(path: o.path(of: "rate"), "required: tokens per second, > 0") }
                let b = try o.double("burst", default: max(1, r.rounded(.up)), in: 1...1e12, rangeText: "a burst >= 1")
                try o.finish()
                let limit = Limit(rate: r, burst: b)
                if name.contains("/") {
                    guard let block = CIDRBlock(name) else {
                        throw ConfigError(path: overrides.path(of: name), "expected an IP address or CIDR block as the key")
                    }
                    blockOverrides.append((block, limit))
                } else {
                    exactOverrides[name] = limit
                }
                overrides.markKnown(name)
            }
            blockOverrides.sort { $0.0.prefixLength > $1.0.prefixLength }
        }
        if let bw = try c.object("bandwidth") {
            let r = try bw.rate("rate")
            guard let r else { throw ConfigError(path: bw.path(of: "rate"), "required: bytes per second, e.g. \"1MiB/s\"") }
            // The default (a tenth of a second of the rate, at least 16 KiB) only when none is given.
            let b = try bw.size("burst", in: 1...Units.maximumSize) ?? UInt64(max(16384, (r / 10).rounded()))
            try bw.finish()
            bandwidth = Limit(rate: r, burst: Double(b))
        } else {
            bandwidth = nil
        }
        shared = try c.object("shared").map(SharedSettings.init)
        try c.finish()
    }

    /// The limit for `key` whose address is `address` (bytes; empty when not an IP).
    func limit(for key: String, address: [UInt8]) -> Limit {
        if let exact = exactOverrides[key] { return exact }
        if !address.isEmpty, let (_, limit) = blockOverrides.first(where: { $0.0.contains(address) }) { return limit }
        return defaultLimit
    }
}
