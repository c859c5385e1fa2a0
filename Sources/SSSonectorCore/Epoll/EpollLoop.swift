import Foundation
import CEpoll
import Glibc
import HeapModule
import Locking
import NIOCore
import Synchronization

/// Something a loop watches: a socket registered with `EpollLoop.register`. Called on the loop.
protocol EpollSource: AnyObject {
    /// The descriptor's events (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP), or 0 when
    /// the loop asks the source to go on with work it deferred (`EpollLoop.later`).
    func ready(_ events: UInt32)
}

/// Something a loop's own timer calls back (`EpollLoop.startTimer`). Called on the loop.
protocol EpollTimerTarget: AnyObject {
    func timerFired()
}

/// One thread around one edge-triggered epoll instance: the relay's own event loop for plain
/// sockets (docs/architecture.md, "Two data paths").
///
/// It is a SwiftNIO `EventLoop` (tasks, scheduled tasks, promises), so a `ProxySession`, its
/// stages' posts, the idle queue and the retry timers run on it unchanged. What it adds is
/// sockets without channels: a source is registered once for input, output and the peer's
/// half-close, edge-triggered, so a relayed request costs no `epoll_ctl` at all (HAProxy's
/// `tune.fd.edge-triggered`), and events go straight to the source, with no pipeline between.
///
/// Thread safety: `execute`, `scheduleTask` and cancellations may come from any thread (a lock
/// and an eventfd); everything else (`register`, `later`, the sources) is confined to the loop.
final class EpollLoop: EventLoop, @unchecked Sendable {  // mutable state: `shared` under its lock, the rest loop-confined
    private let epoll: CInt
    private let wakeFD: CInt
    /// The loop's thread, once running (`pthread_self`).
    private let threadID = Atomic<UInt>(0)
    private let shared = Locked(Shared())

    private struct Shared {
        var tasks: [@Sendable () -> Void] = []
        /// The eventfd was written and not read yet: one wake is enough.
        var woken = false
        var timers = Heap<TimerKey>()
        var timerTasks: [UInt64: TimerJob] = [:]
        var nextTimerID: UInt64 = 1
        var stopping = false
    }

    /// A scheduled task with its promise. It runs on the loop only, so the promise's value
    /// need not be Sendable (`scheduleTask` is generic over any value).
    private struct TimerJob: @unchecked Sendable {
        let run: () -> Void
    }

    private struct TimerKey: Comparable {
        let deadline: UInt64
        let id: UInt64
        static func < (a: TimerKey, b: TimerKey) -> Bool { (a.deadline, a.id) < (b.deadline, b.id) }
    }

    // Loop-confined.
    /// Registered sources by slot; a slot's generation changes when it is freed, so an event
    /// still queued for a closed socket never reaches the source that reuses its slot.
    private var sources = GenerationalSlots<any EpollSource>()
    /// Sources that asked to go on after the current events (`later`).
    private var deferred: [EpollSource] = []
    /// The loop's own timers (`startTimer`): a heap of deadlines over slots, as for sources. A
    /// cancelled timer frees its slot at once and its heap entry when its deadline passes.
    private var timerTargets = GenerationalSlots<any EpollTimerTarget>()
    private var ownTimers = Heap<OwnTimer>()

    private struct OwnTimer: Comparable {
        let deadline: UInt64
        let slot: Int
        let generation: UInt32
        static func < (a: OwnTimer, b: OwnTimer) -> Bool { a.deadline < b.deadline }
        static func == (a: OwnTimer, b: OwnTimer) -> Bool { a.deadline == b.deadline && a.slot == b.slot }
    }
    /// One receive buffer for every socket of the loop: a read lands here, and a chunk nobody
    /// kept when the read returns leaves it free for the next (see `receiveBuffer`).
    var receiveBuffer: ByteBuffer
    private let stopped = DispatchSemaphore(value: 0)
    static let wakeToken = UInt64.max

    /// `splice(2)` into a socket whose peer is gone raises SIGPIPE, and has no MSG_NOSIGNAL
    /// (`send` does): the process ignores the signal and gets EPIPE, as HAProxy and nginx do.
    private static let ignoreBrokenPipes: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    /// Starts the loop on a thread of its own, named `name`.
    init(name: String) throws {
        Self.ignoreBrokenPipes
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            Glibc.close(epoll)
            throw IOError(errnoCode: errno, reason: "eventfd")
        }
        receiveBuffer = ByteBufferAllocator().buffer(capacity: Self.receiveCapacity)
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.wakeToken))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wakeFD, &event)
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
        while threadID.load(ordering: .acquiring) == 0 { sched_yield() }
    }

    /// The descriptors live as long as the loop object, not its thread: `execute` from another
    /// thread after the loop stopped still writes to this eventfd. Closed when the thread ends,
    /// its number could be a new socket of another connection by then, which would receive the
    /// eight bytes of the wake.
    deinit {
        Glibc.close(wakeFD)
        Glibc.close(epoll)
    }

    /// The size of a read: HAProxy's `tune.bufsize` is 16 KiB; a larger one halves the system
    /// calls of a bulk transfer on loopback.
    static let receiveCapacity = 64 * 1024

    // MARK: EventLoop

    var inEventLoop: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    func execute(_ task: @escaping @Sendable () -> Void) {
        let wake = shared.withLock { s -> Bool in
            s.tasks.append(task)
            guard !s.woken else { return false }
            s.woken = true
            return true
        }
        // On the loop itself no wake is needed: pending tasks make the next wait return at once.
        if wake && !inEventLoop { signal() }
    }

    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        let at = UInt64(clamping: deadline.uptimeNanoseconds)
        let job = TimerJob {
            do { promise.assumeIsolated().succeed(try task()) } catch { promise.fail(error) }
        }
        let (id, earliest) = shared.withLock { s -> (UInt64, Bool) in
            let id = s.nextTimerID
            s.nextTimerID += 1
            s.timerTasks[id] = job
            let earliest = s.timers.min.map { at < $0.deadline } ?? true
            s.timers.insert(TimerKey(deadline: at, id: id))
            return (id, earliest)
        }
        if earliest && !inEventLoop { signal() }
        return Scheduled(promise: promise, cancellationTask: { [self] in
            let cancelled = shared.withLock { $0.timerTasks.removeValue(forKey: id) != nil }
            if cancelled { promise.fail(EventLoopError.cancelled) }
        })
    }

    func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on this EpollLoop", file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on this EpollLoop", file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable (Error?) -> Void) {
        shared.withLock { $0.stopping = true }
        signal()
        let stopped = self.stopped
        queue.async {
            stopped.wait()
            callback(nil)
        }
    }

    // MARK: sources (on the loop)

    /// Watches `fd` for `source`, edge-triggered for input, output and the peer's half-close.
    /// Returns the registration to give back to `deregister` before the descriptor is closed.
    func register(_ fd: CInt, _ source: EpollSource,
                  events: UInt32 = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue) throws -> Int {
        let (slot, generation) = sources.insert(source)
        var event = epoll_event(events: events, data: epoll_data_t(u64: UInt64(generation) << 32 | UInt64(slot)))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            let code = errno
            deregister(slot, fd: nil)
            throw IOError(errnoCode: code, reason: "epoll_ctl")
        }
        return slot
    }

    /// Stops watching; with `fd`, takes it out of the epoll set too (a descriptor about to be
    /// closed leaves the set by itself).
    func deregister(_ slot: Int, fd: CInt?) {
        if let fd { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
        sources.remove(slot)
    }

    /// Calls `target.timerFired()` once `deadline` (`NIODeadline` nanoseconds) passes, unless
    /// `cancelTimer` comes first. Unlike `scheduleTask`, no promise, closure or lock: a connect
    /// timeout on every connection costs a heap entry. Returns the timer to cancel.
    func startTimer(at deadline: UInt64, _ target: EpollTimerTarget) -> Int {
        let (slot, generation) = timerTargets.insert(target)
        ownTimers.insert(OwnTimer(deadline: deadline, slot: slot, generation: generation))
        return slot
    }

    func cancelTimer(_ slot: Int) { timerTargets.remove(slot) }

    private func runOwnTimers(now: UInt64) {
        while let next = ownTimers.min, next.deadline <= now {
            ownTimers.removeMin()
            guard let target = timerTargets.element(next.slot, generation: next.generation) else { continue }
            cancelTimer(next.slot)
            target.timerFired()
        }
    }

    /// Calls `source.ready(0)` after the events at hand: a source that stopped reading for
    /// fairness, or was asked to resume, goes on without waiting for a new edge.
    func later(_ source: EpollSource) { deferred.append(source) }

    // MARK: the loop

    private func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    private func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let timeout = waitTimeout()
            if timeout == -2 { break }
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeout) }
            for i in 0..<Int(max(count, 0)) {
                let token = events[i].data.u64
                if token == Self.wakeToken {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                    continue
                }
                guard let source = sources.element(Int(token & 0xFFFF_FFFF), generation: UInt32(token >> 32)) else { continue }
                source.ready(events[i].events)
            }
            runDeferred()
            runTimers()
            runTasks()
        }
        stopped.signal()
    }

    /// Milliseconds until the next timer (rounded up), 0 with work pending, -1 for none, -2 to stop.
    private func waitTimeout() -> Int32 {
        let own = ownTimers.min?.deadline ?? .max
        return shared.withLock { s -> Int32 in
            if s.stopping { return -2 }
            s.woken = !s.tasks.isEmpty  // a task queued from now on must wake the wait
            if !s.tasks.isEmpty || !deferred.isEmpty { return 0 }
            let next = min(s.timers.min?.deadline ?? .max, own)
            guard next != .max else { return -1 }
            let now = UInt64(clamping: NIODeadline.now().uptimeNanoseconds)
            guard next > now else { return 0 }
            return Int32(clamping: (next - now + 999_999) / 1_000_000)
        }
    }

    private func runDeferred() {
        guard !deferred.isEmpty else { return }
        let sources = deferred
        deferred.removeAll(keepingCapacity: true)
        for source in sources { source.ready(0) }
    }

    private func runTimers() {
        let now = UInt64(clamping: NIODeadline.now().uptimeNanoseconds)
        runOwnTimers(now: now)
        while true {
            let due = shared.withLock { s -> TimerJob?? in
                guard let next = s.timers.min, next.deadline <= now else { return nil }
                s.timers.removeMin()
                return .some(s.timerTasks.removeValue(forKey: next.id))  // nil inside: cancelled
            }
            guard let job = due else { return }
            job?.run()
        }
    }

    private func runTasks() {
        let tasks = shared.withLock { s -> [@Sendable () -> Void] in
            var taken: [@Sendable () -> Void] = []
            swap(&taken, &s.tasks)
            return taken
        }
        for task in tasks { task() }
    }
}
