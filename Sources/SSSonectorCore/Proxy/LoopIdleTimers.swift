import NIOCore

/// The idle queues of one event loop, one per idle timeout in use (a reload can bring a second
/// one while connections of the first still run), each with at most one NIO timer pending.
///
/// Confined to `loop`; `@unchecked Sendable` only so the listener's child-channel initializer
/// can carry it to the connections accepted on that loop.
final class LoopIdleTimers: @unchecked Sendable {
    private let loop: EventLoop
    private let clock: any HostClock
    private var queues: [UInt64: IdleQueue<ProxySession>] = [:]

    init(loop: EventLoop, clock: any HostClock) {
        self.loop = loop
        self.clock = clock
    }

    /// The queue for `timeout` nanoseconds, created on first use.
    func queue(timeout: UInt64) -> IdleQueue<ProxySession> {
        loop.assertInEventLoop()
        if let known = queues[timeout] { return known }
        let queue = IdleQueue<ProxySession>(
            timeout: timeout,
            schedule: { [unowned self] deadline in self.expire(timeout: timeout, at: deadline) },
            expired: { session in session.idleDeadlinePassed() })
        queues[timeout] = queue
        return queue
    }

    private func expire(timeout: UInt64, at deadline: UInt64) {
        let delay = deadline &- min(deadline, clock.monotonicNanoseconds())
        loop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(clamping: delay))) { [self] in
            queues[timeout]?.expire(now: clock.monotonicNanoseconds())
        }
    }
}
