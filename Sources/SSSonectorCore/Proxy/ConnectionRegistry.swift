import NIOCore
import Synchronization

/// The live connections of the process, by id: where `conn_post_close` and
/// `conn_post_resume` are delivered (on each connection's loop), and what a shutdown closes.
final class ConnectionRegistry: ConnectionPoster, Sendable {
    private let sessions = Mutex<[UInt64: NIOLoopBound<ProxySession>]>([:])
    private let nextID = Atomic<UInt64>(1)

    /// A process-unique connection id.
    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    func add(_ session: NIOLoopBound<ProxySession>, id: UInt64) {
        sessions.withLock { $0[id] = session }
    }

    func remove(_ id: UInt64) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    var count: Int { sessions.withLock { $0.count } }

    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool {
        guard let bound = sessions.withLock({ $0[connectionID] }) else { return false }
        bound.eventLoop.execute { bound.value.postedClose(reason: reasonCode) }
        return true
    }

    func postResume(connectionID: UInt64, direction: UInt32) -> Bool {
        guard let bound = sessions.withLock({ $0[connectionID] }) else { return false }
        bound.eventLoop.execute { bound.value.resume(direction) }
        return true
    }

    /// Closes every connection with `cause` (shutdown past the drain deadline).
    func closeAll(cause: UInt32) {
        let all = sessions.withLock { Array($0.values) }
        for bound in all {
            bound.eventLoop.execute { bound.value.finish(cause) }
        }
    }
}
