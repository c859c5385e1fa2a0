import Locking
import NIOCore
import Synchronization

/// Which connections a stage instance may post to: those of the chain it belongs to. One per
/// assembled chain (a reload makes new ones), so a stage never closes or resumes another
/// pipeline's connections, nor those of another generation of its own.
final class ConnectionScope: Sendable {
    init() {}
}

/// The live connections of the process, by id: where `conn_post_close` and
/// `conn_post_resume` are delivered (on each connection's loop), and what a shutdown closes.
/// Stages reach it only through `poster(scopedTo:)`.
final class ConnectionRegistry: Sendable {
    private struct Entry {
        let session: NIOLoopBound<ProxySession>
        let scope: ObjectIdentifier
    }
    private let sessions = Locked<[UInt64: Entry]>([:])
    private let nextID = Atomic<UInt64>(1)
    /// Wakes a shutdown waiting for the last connection to close.
    private let drained = Locked<[@Sendable () -> Void]>([])

    /// A process-unique connection id.
    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    func add(_ session: NIOLoopBound<ProxySession>, id: UInt64, scope: ConnectionScope) {
        sessions.withLock { $0[id] = Entry(session: session, scope: ObjectIdentifier(scope)) }
    }

    /// The poster handed to the stages of the chain `scope` belongs to.
    func poster(scopedTo scope: ConnectionScope) -> any ConnectionPoster {
        ScopedConnectionPoster(registry: self, scope: scope)
    }

    fileprivate func session(_ id: UInt64, in scope: ObjectIdentifier) -> NIOLoopBound<ProxySession>? {
        sessions.withLock { table in table[id].flatMap { $0.scope == scope ? $0.session : nil } }
    }

    func remove(_ id: UInt64) {
        let wake = sessions.withLock { table -> Bool in
            table.removeValue(forKey: id)
            return table.isEmpty
        }
        guard wake else { return }
        let waiting = drained.withLock { list -> [@Sendable () -> Void] in
            defer { list.removeAll() }
            return list
        }
        waiting.forEach { $0() }
    }

    var count: Int { sessions.withLock { $0.count } }

    /// Calls `body` once no connection is open (at once if none is). From any thread.
    func whenEmpty(_ body: @escaping @Sendable () -> Void) {
        let now = sessions.withLock { table -> Bool in
            if table.isEmpty { return true }
            drained.withLock { $0.append(body) }
            return false
        }
        if now { body() }
    }

    /// Closes every connection with `cause` (shutdown past the drain deadline).
    func closeAll(cause: UInt32) {
        let all = sessions.withLock { $0.values.map(\.session) }
        for bound in all {
            bound.eventLoop.execute { bound.value.finish(cause) }
        }
    }
}

/// `conn_post_close` and `conn_post_resume` of one chain's stages: a connection id outside the
/// chain is "not found", exactly like one that does not exist.
private final class ScopedConnectionPoster: ConnectionPoster {
    let registry: ConnectionRegistry
    let scope: ObjectIdentifier
    private let keepAlive: ConnectionScope

    init(registry: ConnectionRegistry, scope: ConnectionScope) {
        self.registry = registry
        self.scope = ObjectIdentifier(scope)
        self.keepAlive = scope  // the identifier stays unique while a poster can use it
    }

    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool {
        guard let bound = registry.session(connectionID, in: scope) else { return false }
        bound.eventLoop.execute { bound.value.postedClose(reason: reasonCode) }
        return true
    }

    func postResume(connectionID: UInt64, direction: UInt32) -> Bool {
        guard let bound = registry.session(connectionID, in: scope) else { return false }
        bound.eventLoop.execute { bound.value.resume(abiDirection: direction) }
        return true
    }

    func postVerdict(connectionID: UInt64, _ verdict: PostedVerdict) -> Bool {
        guard let bound = registry.session(connectionID, in: scope) else { return false }
        bound.eventLoop.execute { bound.value.postedVerdict(verdict) }
        return true
    }
}
