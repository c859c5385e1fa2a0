import StageKit
import Synchronization

/// Token buckets by key, sharded so concurrent opens from every event loop rarely meet on a
/// lock (one short lock per shard, never a global one).
///
/// Bounded: at most `maxKeys` buckets. Past that, a new key first drops the full buckets of its
/// shard (they are the same as new ones); if the shard is still full, the key shares one
/// overflow bucket with the default limit, so a flood of distinct keys is limited as one client
/// and memory stays bounded.
final class BucketTable: Sendable {
    struct Entry: Sendable {
        var bucket: TokenBucket
        /// Set by `set_rate` for this key: survives default changes.
        var pinned: Bool
        var allowed: UInt64 = 0
        var rejected: UInt64 = 0
    }

    /// One shard: its own lock and buckets.
    final class Shard: Sendable {
        let table = Locked<[String: Entry]>([:])
        func withLock<R>(_ body: (inout [String: Entry]) -> R) -> R { table.withLock { body(&$0) } }
    }

    private static let shardCount = 16
    private let shards: [Shard]
    private let perShardLimit: Int
    private let overflow: Locked<Entry>
    static let overflowKey = "(overflow)"

    init(maxKeys: Int, defaultLimit: RateLimitConfig.Limit, now: UInt64) {
        shards = (0..<Self.shardCount).map { _ in Shard() }
        perShardLimit = max(1, maxKeys / Self.shardCount)
        overflow = Locked(Entry(bucket: TokenBucket(rate: defaultLimit.rate, burst: defaultLimit.burst, now: now), pinned: false))
    }

    private func shard(_ key: String) -> Int {
        var h: UInt64 = 14_695_981_039_346_656_037
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 1_099_511_628_211 }
        return Int(h % UInt64(Self.shardCount))
    }

    /// Takes one token for `key`, creating its bucket (full) with `limit` when new.
    func take(_ key: String, now: UInt64, limit: () -> RateLimitConfig.Limit) -> Bool {
        let allowed: Bool? = shards[shard(key)].withLock { table in
            var entry: Entry
            if let existing = table[key] {
                entry = existing
            } else {
                if table.count >= perShardLimit {
                    table = table.filter { !$0.value.bucket.isFull(now: now) || $0.value.pinned }
                }
                guard table.count < perShardLimit else { return nil }
                let l = limit()
                entry = Entry(bucket: TokenBucket(rate: l.rate, burst: l.burst, now: now), pinned: false)
            }
            let ok = entry.bucket.take(now: now)
            if ok { entry.allowed += 1 } else { entry.rejected += 1 }
            table[key] = entry
            return ok
        }
        if let allowed { return allowed }
        return overflow.withLock { entry in
            let ok = entry.bucket.take(now: now)
            if ok { entry.allowed += 1 } else { entry.rejected += 1 }
            return ok
        }
    }

    /// Applies `change` to the bucket of `key` (creating it with `limit` when absent).
    func update(_ key: String, now: UInt64, limit: RateLimitConfig.Limit, _ change: (inout Entry) -> Void) {
        shards[shard(key)].withLock { table in
            var entry = table[key] ?? Entry(bucket: TokenBucket(rate: limit.rate, burst: limit.burst, now: now), pinned: false)
            change(&entry)
            table[key] = entry
        }
    }

    /// Reconfigures every bucket that follows the default limit.
    func updateDefaults(to limit: RateLimitConfig.Limit, now: UInt64, followsDefault: (String) -> Bool) {
        for shard in shards {
            shard.withLock { table in
                for (key, entry) in table where !entry.pinned && followsDefault(key) {
                    table[key]!.bucket.reconfigure(rate: limit.rate, burst: limit.burst, now: now)
                    _ = entry
                }
            }
        }
        overflow.withLock { $0.bucket.reconfigure(rate: limit.rate, burst: limit.burst, now: now) }
    }

    func entry(_ key: String) -> Entry? {
        shards[shard(key)].withLock { $0[key] }
    }

    /// Drops buckets that have refilled to full and are not pinned; returns how many remain.
    @discardableResult
    func dropFull(now: UInt64) -> Int {
        var remaining = 0
        for shard in shards {
            remaining += shard.withLock { table in
                table = table.filter { $0.value.pinned || !$0.value.bucket.isFull(now: now) }
                return table.count
            }
        }
        return remaining
    }

    var count: Int { shards.reduce(0) { $0 + $1.withLock { $0.count } } }

    /// The `limit` keys with the most rejections.
    func topRejected(_ limit: Int) -> [(key: String, rejected: UInt64, allowed: UInt64)] {
        var all: [(String, UInt64, UInt64)] = []
        for shard in shards {
            shard.withLock { table in
                for (k, e) in table where e.rejected > 0 { all.append((k, e.rejected, e.allowed)) }
            }
        }
        overflow.withLock { e in if e.rejected > 0 { all.append((Self.overflowKey, e.rejected, e.allowed)) } }
        return all.sorted { $0.1 > $1.1 }.prefix(limit).map { ($0.0, $0.1, $0.2) }
    }
}
