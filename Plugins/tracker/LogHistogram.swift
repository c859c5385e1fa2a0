/// A bounded histogram of nanosecond values: 16 linear sub-buckets per power of two (at most
/// ~6% relative error), fixed memory whatever the traffic, mergeable across shards.
struct LogHistogram: Sendable {
    static let subBuckets = 16
    static let bucketCount = 61 * subBuckets
    private(set) var counts = [UInt64](repeating: 0, count: bucketCount)
    private(set) var count: UInt64 = 0
    private(set) var sum: Double = 0
    private(set) var max: UInt64 = 0

    static func index(_ value: UInt64) -> Int {
        if value < UInt64(subBuckets) { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount        // >= 4
        let sub = Int((value >> UInt64(exponent - 4)) & 15)
        return (exponent - 3) * subBuckets + sub
    }

    /// The middle of bucket `index`'s range.
    static func value(at index: Int) -> Double {
        if index < subBuckets { return Double(index) }
        let exponent = index / subBuckets + 3
        let sub = index % subBuckets
        let low = Double(UInt64(16 + sub) << UInt64(exponent - 4))
        let width = Double(UInt64(1) << UInt64(exponent - 4))
        return low + width / 2
    }

    mutating func record(_ value: UInt64) {
        counts[Self.index(value)] += 1
        count += 1
        sum += Double(value)
        if value > max { max = value }
    }

    mutating func merge(_ other: LogHistogram) {
        for i in 0..<Self.bucketCount { counts[i] += other.counts[i] }
        count += other.count
        sum += other.sum
        if other.max > max { max = other.max }
    }

    /// The value at quantile `q` (0...1); 0 when empty. Never above the true maximum.
    func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = UInt64((q * Double(count)).rounded(.up))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= Swift.max(rank, 1) { return Swift.min(Self.value(at: i), Double(max)) }
        }
        return Double(max)
    }

    var average: Double { count == 0 ? 0 : sum / Double(count) }
}

/// A bounded map of counters: at most `capacity` keys; a new key past that replaces the
/// smallest (so heavy hitters stay, as in the space-saving algorithm).
struct TopCounter: Sendable {
    let capacity: Int
    private(set) var values: [String: (connections: UInt64, bytes: UInt64)] = [:]

    init(capacity: Int) { self.capacity = capacity }

    mutating func add(_ key: String, connections: UInt64, bytes: UInt64) {
        if values[key] == nil, values.count >= capacity,
           let smallest = values.min(by: { $0.value.connections < $1.value.connections })?.key {
            let floor = values.removeValue(forKey: smallest)!
            values[key] = (floor.connections, floor.bytes)  // inherits the evicted count: an upper bound
        }
        let old = values[key] ?? (0, 0)
        values[key] = (old.connections + connections, old.bytes + bytes)
    }

    mutating func merge(_ other: TopCounter) {
        for (k, v) in other.values { add(k, connections: v.connections, bytes: v.bytes) }
    }

    mutating func removeAll() { values.removeAll() }
}
