import Locking
import StageABI
import Synchronization

/// Live figures of one upstream, shared by every snapshot that contains it: the relay's and
/// its warm pool's (summed over the event loops).
public final class UpstreamCounters: Sendable {
    public let figures = FigureValues<UpstreamFigure>()
    public let pool = FigureValues<PoolFigure>()
    public let evictions = FigureValues<PoolEviction>()
    public init() {}

    /// Open relayed connections now.
    public var active: UInt64 { figures[.active] }
}

/// One upstream as the host knows it.
public struct UpstreamEntry: Sendable {
    /// Stable for the upstream's life; never reused within a process.
    public let id: UInt64
    public let name: String
    public let address: String
    public var weight: UInt32
    public var draining: Bool
    public let counters: UpstreamCounters
}

/// An immutable version of a pipeline's upstream set, with the C view stages read
/// (`sss_upstream_set`). The strings and items live as long as the snapshot; a connection keeps
/// the snapshot it chose from until it closes, so indexes stay meaningful for it.
public final class UpstreamSnapshot: @unchecked Sendable {  // immutable after init
    public let entries: [UpstreamEntry]
    public let generation: UInt64
    private let items: UnsafeMutablePointer<sss_upstream>
    private let strings: UnsafeMutablePointer<UInt8>
    private let set: UnsafeMutablePointer<sss_upstream_set>

    public init(entries: [UpstreamEntry], generation: UInt64) {
        self.entries = entries
        self.generation = generation
        let textBytes = entries.reduce(0) { $0 + $1.name.utf8.count + $1.address.utf8.count + 2 }
        strings = .allocate(capacity: max(textBytes, 1))
        items = .allocate(capacity: max(entries.count, 1))
        set = .allocate(capacity: 1)
        var cursor = strings
        func store(_ s: String) -> sss_str {
            let start = cursor
            for byte in s.utf8 { cursor.pointee = byte; cursor += 1 }
            cursor.pointee = 0
            cursor += 1
            return sss_str(ptr: UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self), len: UInt64(s.utf8.count))
        }
        for (i, e) in entries.enumerated() {
            let name = store(e.name)
            let address = store(e.address)
            (items + i).initialize(to: sss_upstream(
                struct_size: UInt32(MemoryLayout<sss_upstream>.size),
                flags: e.draining ? SSS_UPSTREAM_DRAINING : SSS_UPSTREAM_HEALTHY,
                id: e.id, name: name, address: address, weight: e.weight, reserved: 0, active: 0))
        }
        set.initialize(to: sss_upstream_set(
            struct_size: UInt32(MemoryLayout<sss_upstream_set>.size), count: UInt32(entries.count),
            stride: UInt32(MemoryLayout<sss_upstream>.stride), reserved: 0, generation: generation,
            items: UnsafePointer(items)))
    }

    deinit {
        items.deallocate()
        strings.deallocate()
        set.deallocate()
    }

    public var count: Int { entries.count }

    /// The C view as of creation (`active` = 0), for `create` and for control-thread use.
    var staticView: UnsafePointer<sss_upstream_set> { UnsafePointer(set) }

    /// Writes the C view with live `active` figures into caller-owned storage (one connection's
    /// scratch, `count` items), so concurrent connections never write shared memory.
    func fillView(items out: UnsafeMutablePointer<sss_upstream>, set outSet: UnsafeMutablePointer<sss_upstream_set>) {
        out.update(from: items, count: entries.count)
        for i in 0..<entries.count {
            out[i].active = entries[i].counters.active
        }
        outSet.pointee = set.pointee
        outSet.pointee.items = UnsafePointer(out)
    }

}

/// A pipeline's upstreams, changeable at run time (admin API). Readers take the current
/// snapshot; writers publish a new one.
public final class UpstreamTable: Sendable {
    private struct State {
        var snapshot: UpstreamSnapshot
        var nextID: UInt64
    }
    private let state: Locked<State>

    public init(_ upstreams: [(name: String, address: String, weight: UInt32)]) {
        var id: UInt64 = 0
        let entries = upstreams.map { u -> UpstreamEntry in
            id += 1
            return UpstreamEntry(id: id, name: u.name, address: u.address, weight: u.weight,
                                 draining: false, counters: UpstreamCounters())
        }
        state = Locked(State(snapshot: UpstreamSnapshot(entries: entries, generation: 1), nextID: id + 1))
    }

    public var current: UpstreamSnapshot { state.withLock { $0.snapshot } }

    /// Adds an upstream; returns false when the name is taken.
    @discardableResult
    public func add(name: String, address: String, weight: UInt32) -> Bool {
        state.withLock { s in
            guard !s.snapshot.entries.contains(where: { $0.name == name }) else { return false }
            let entry = UpstreamEntry(id: s.nextID, name: name, address: address, weight: weight,
                                      draining: false, counters: UpstreamCounters())
            s.nextID += 1
            s.snapshot = UpstreamSnapshot(entries: s.snapshot.entries + [entry],
                                          generation: s.snapshot.generation + 1)
            return true
        }
    }

    /// Marks an upstream draining (no new connections); it leaves the set when its last
    /// connection closes (`removeDrained`). Returns false when there is no such upstream.
    @discardableResult
    public func drain(name: String) -> Bool {
        update(name: name, draining: true)
    }

    /// Changes an upstream's weight. Returns false when there is no such upstream.
    @discardableResult
    public func setWeight(name: String, weight: UInt32) -> Bool {
        update(name: name, weight: weight)
    }

    /// Changes an upstream's weight and draining state in one step (what is nil stays): a
    /// draining upstream set back to `draining: false` takes new connections again, as long as
    /// it has not left the set yet. Returns false when there is no such upstream.
    @discardableResult
    public func update(name: String, weight: UInt32? = nil, draining: Bool? = nil) -> Bool {
        mutate(name) { entry in
            if let weight { entry.weight = weight }
            if let draining { entry.draining = draining }
        }
    }

    /// Drops draining upstreams with no open connection.
    public func removeDrained() {
        state.withLock { s in
            let kept = s.snapshot.entries.filter {
                !$0.draining || $0.counters.active > 0
            }
            if kept.count != s.snapshot.entries.count {
                s.snapshot = UpstreamSnapshot(entries: kept, generation: s.snapshot.generation + 1)
            }
        }
    }

    private func mutate(_ name: String, _ change: (inout UpstreamEntry) -> Void) -> Bool {
        state.withLock { s in
            guard let i = s.snapshot.entries.firstIndex(where: { $0.name == name }) else { return false }
            var entries = s.snapshot.entries
            change(&entries[i])
            s.snapshot = UpstreamSnapshot(entries: entries, generation: s.snapshot.generation + 1)
            return true
        }
    }
}
