/// The shared budget's one Redis script: GCRA (the generic cell rate algorithm, as
/// go-redis/redis_rate and redis-cell run it), atomic on the server, one round trip per
/// admission, on Redis's own clock (`TIME`), so the hosts' clocks do not matter.
///
/// The key holds the theoretical arrival time (TAT) in microseconds. A request is allowed when
/// `TAT + interval - burst * interval <= now`; it then moves TAT by one interval. The key
/// expires when the bucket is full again, so idle keys cost Redis nothing.
///
/// KEYS[1]: the bucket's key. ARGV[1]: the emission interval (µs per token, `1e6 / rate`).
/// ARGV[2]: the burst. Returns `{1, 0}` (allowed) or `{0, retry_after_µs}`.
public enum GCRAScript {
    public static let source = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        local new_tat = tat + interval
        local allow_at = new_tat - burst * interval
        if allow_at > now then
          return {0, math.ceil(allow_at - now)}
        end
        local ttl = math.ceil((new_tat - now) / 1000)
        if ttl < 1 then ttl = 1 end
        redis.call('SET', KEYS[1], string.format('%d', math.ceil(new_tat)), 'PX', ttl)
        return {1, 0}
        """

    /// The interval argument for `rate` tokens per second (µs per token). Swift's shortest
    /// round-trip text ("10000.0", "1e-06"), which Lua's `tonumber` reads: `String(format:)`
    /// cost 13,000 instructions a call here (callgrind), most of an admission.
    public static func intervalArgument(rate: Double) -> String {
        (1_000_000 / rate).description
    }

    /// The burst argument (decimal text).
    public static func burstArgument(_ burst: Double) -> String {
        burst.description
    }

    /// What the script's reply means, or nil for a reply it never gives.
    public static func answer(_ reply: RedisReply) -> BudgetAnswer? {
        guard case .array(let items) = reply, items.count == 2,
              case .integer(let allowed) = items[0], case .integer(let retry) = items[1] else { return nil }
        return allowed == 1 ? .allowed : .denied(retryAfterNanoseconds: UInt64(max(0, retry)) * 1000)
    }
}

/// What the shared store answered for one admission.
public enum BudgetAnswer: Sendable, Equatable {
    case allowed
    /// Denied; the key has a token again after this long.
    case denied(retryAfterNanoseconds: UInt64)
}
