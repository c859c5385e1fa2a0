import StageABI

/// One connection as a stage sees it during a hook: a view over host memory, valid only during
/// the call (do not keep it). Per-connection state lives in `state`.
public struct StageConnection {
    let raw: UnsafePointer<sss_conn>
    let slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?

    init(_ raw: UnsafePointer<sss_conn>, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        self.raw = raw
        self.slot = slot
    }

    /// Unique in the process; for `StageHost.closeConnection` and `resume`.
    public var id: UInt64 { raw.pointee.id }
    /// The event loop the connection runs on (< `StageSetup.threadCount`): a shard index.
    public var threadIndex: Int { Int(raw.pointee.thread_index) }
    /// The client's IP address as text, without the port.
    public var peerIP: String { raw.pointee.peer_ip.string }
    /// The client's address bytes (4 or 16) and port.
    public var peerAddress: (bytes: [UInt8], port: UInt16) { raw.pointee.peer.bytesAndPort }
    public var localAddress: (bytes: [UInt8], port: UInt16) { raw.pointee.local.bytesAndPort }
    public var pipeline: String { raw.pointee.pipeline.string }
    /// The listen address as the pipeline file writes it.
    public var listener: String { raw.pointee.listener.string }
    /// Monotonic nanoseconds at accept.
    public var acceptedAt: UInt64 { raw.pointee.accepted_ns }
    /// Monotonic nanoseconds of this hook call.
    public var now: UInt64 { raw.pointee.now_ns }
    /// Index of the chosen upstream in the current set, if chosen.
    public var upstreamIndex: Int? { raw.pointee.upstream_index < 0 ? nil : Int(raw.pointee.upstream_index) }
    /// Stable id of the chosen upstream (0: none yet).
    public var upstreamID: UInt64 { raw.pointee.upstream_id }
    /// Connect attempt number, 1-based (0 before the first).
    public var attempt: Int { Int(raw.pointee.attempt) }
    /// The verified client certificate of a mutual-TLS listener ("CN=...; DNS:..., IP:...");
    /// empty without one, or on a host older than ABI 1.1.
    public var peerIdentity: String {
        let end = MemoryLayout<sss_conn>.offset(of: \sss_conn.peer_identity)! + MemoryLayout<sss_str>.size
        return Int(raw.pointee.struct_size) >= end ? raw.pointee.peer_identity.string : ""
    }

    /// The object this stage stored for the connection, if it is a `T` (nil when none was
    /// stored, or when it is of another type: asking for the wrong type is caught, never a
    /// reinterpretation). No retain or release happens on the exact-type path.
    public func state<T: AnyObject>(as type: T.Type) -> T? {
        withState(as: type) { $0 }
    }

    /// Runs `body` with the stored state borrowed (no reference counting) if it is a `T`; nil
    /// when none was stored or it is of another type. The fast path for hot hooks: the check
    /// is one comparison of the object's class with `T`.
    public func withState<T: AnyObject, R>(as type: T.Type, _ body: (T) -> R) -> R? {
        guard let pointer = slot?.pointee else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(pointer)._withUnsafeGuaranteedRef { object -> R? in
            if ObjectIdentifier(Swift.type(of: object)) == ObjectIdentifier(T.self) {
                return body(unsafeDowncast(object, to: T.self))
            }
            guard let typed = object as? T else { return nil }  // a subclass of T
            return body(typed)
        }
    }

    /// Stores per-connection state (from `open`); StageKit releases it after `close`.
    public func setState(_ object: AnyObject?) {
        guard let slot else { return }
        if let old = slot.pointee { Unmanaged<AnyObject>.fromOpaque(old).release() }
        slot.pointee = object.map { Unmanaged.passRetained($0).toOpaque() }
    }
}

extension sss_str {
    var string: String {
        guard let ptr, len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: ptr, count: Int(len)), as: UTF8.self)
    }
}

extension sss_addr {
    var bytesAndPort: (bytes: [UInt8], port: UInt16) {
        let count = family == SSS_AF_INET ? 4 : family == SSS_AF_INET6 ? 16 : 0
        let bytes = withUnsafeBytes(of: addr) { Array($0.prefix(count)) }
        return (bytes, port)
    }
}

/// The pipeline's upstreams during a hook (read-only, valid during the call).
public struct UpstreamList: RandomAccessCollection {
    let raw: UnsafePointer<sss_upstream_set>

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(raw.pointee.count) }
    /// Changes whenever upstreams are added, removed or changed.
    public var generation: UInt64 { raw.pointee.generation }

    public subscript(position: Int) -> Upstream {
        let item = (UnsafeRawPointer(raw.pointee.items!) + position * Int(raw.pointee.stride))
            .assumingMemoryBound(to: sss_upstream.self)
        return Upstream(raw: item)
    }
}

/// One upstream (a view; valid during the call).
public struct Upstream {
    let raw: UnsafePointer<sss_upstream>
    /// Stable id: key per-upstream state by it, not by position.
    public var id: UInt64 { raw.pointee.id }
    public var name: String { raw.pointee.name.string }
    public var address: String { raw.pointee.address.string }
    public var weight: UInt32 { raw.pointee.weight }
    /// Open connections to it now (approximate).
    public var active: UInt64 { raw.pointee.active }
    public var isDraining: Bool { raw.pointee.flags & SSS_UPSTREAM_DRAINING != 0 }
}

/// What an `UpstreamStatusHook` reports: per upstream (by position), unhealthy or paused.
public struct UpstreamStatusReport {
    let flags: UnsafeMutablePointer<UInt8>
    public let count: Int

    /// Upstream `index` fails its health checks (`healthy: false` in `/stats`).
    public mutating func markUnhealthy(_ index: Int) {
        if index >= 0 && index < count { flags[index] |= UInt8(SSS_STATUS_UNHEALTHY) }
    }

    /// Upstream `index` is healthy but takes no new connection now (an open circuit).
    public mutating func markPaused(_ index: Int) {
        if index >= 0 && index < count { flags[index] |= UInt8(SSS_STATUS_PAUSED) }
    }
}

/// The eligible set during filtering and selection.
public struct EligibleUpstreams {
    let flags: UnsafeMutablePointer<UInt8>
    public let count: Int

    /// Whether upstream `index` may be chosen.
    public func contains(_ index: Int) -> Bool { index >= 0 && index < count && flags[index] != 0 }
    /// Removes `index` from the set (filters may only remove).
    public mutating func remove(_ index: Int) {
        if index >= 0 && index < count { flags[index] = 0 }
    }
    /// Indexes still eligible, in order.
    public var indexes: [Int] { (0..<count).filter { flags[$0] != 0 } }
    public var isEmpty: Bool { !(0..<count).contains { flags[$0] != 0 } }
}
