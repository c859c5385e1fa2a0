import NIOCore

/// The idle deadlines of one event loop's connections (an `IdleQueue`), with at most one NIO
/// timer pending for the earliest of them.
///
/// Confined to `loop`; `@unchecked Sendable` only so the listener's child-channel initializer
/// can carry it to the connections accepted on that loop.
final class LoopIdleTimers: @unchecked Sendable {
    private let loop: EventLoop
    private let clock: any HostClock
    private var storage: IdleQueue<ProxySession>?

    init(loop: EventLoop, clock: any HostClock) {
        self.loop = loop
        self.clock = clock
    }

    /// The loop's queue (created on first use, on the loop).
    var queue: IdleQueue<ProxySession> {
        loop.assertInEventLoop()
        if let storage { return storage }
        let created = IdleQueue<ProxySession>(
            schedule: { [unowned self] deadline in self.scheduleExpiry(at: deadline) },
            expired: { session in session.idleDeadlinePassed() })
        storage = created
        return created
    }

    private func scheduleExpiry(at deadline: UInt64) {
        let delay = deadline &- min(deadline, clock.monotonicNanoseconds())
        loop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(clamping: delay))) { [self] in
            storage?.expire(now: clock.monotonicNanoseconds())
        }
    }
}
