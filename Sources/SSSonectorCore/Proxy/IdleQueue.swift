/// The idle deadlines of one event loop's connections that share one idle timeout, in a FIFO
/// that is also deadline order: every deadline is "armed at + timeout" with a monotonic clock
/// and one timeout, so each new deadline is the latest. Arming, re-arming and cancelling are
/// O(1) with no allocation, and one timer (for the head) serves the whole queue.
///
/// Why not one `EventLoop.scheduleTask` per connection: NIO allocates a promise and a future
/// for each, and cancels by scanning every scheduled task of the loop under a lock, so closing a
/// connection costs O(open connections).
///
/// Not thread-safe: confine it to one event loop. Clock-agnostic: the caller passes `now` and
/// runs `expire(now:)` when the timer it was asked for (`schedule`) fires.
final class IdleQueue<Owner: AnyObject> {
    /// One owner's place in the queue; the owner keeps it for its whole life.
    final class Entry {
        /// Strong while armed: like a scheduled closure, an armed deadline keeps its owner alive.
        fileprivate var owner: Owner?
        fileprivate var next: Entry?
        fileprivate unowned(unsafe) var previous: Entry?
        /// When the owner goes idle, if nothing re-arms it first.
        fileprivate(set) var deadline: UInt64 = 0
        fileprivate(set) var isArmed = false

        init() {}
    }

    let timeout: UInt64
    private var head: Entry?
    private unowned(unsafe) var tail: Entry?
    /// The deadline of the timer requested last (nil: none pending).
    private var timerDeadline: UInt64?
    /// Inside `expire`: owners re-armed by `expired` must not request a timer for themselves
    /// while earlier deadlines are still queued.
    private var expiring = false
    /// Asks for `expire(now:)` to run at a deadline (on the queue's loop).
    private let schedule: (UInt64) -> Void
    /// Called for every owner whose deadline passed, after it left the queue.
    private let expired: (Owner) -> Void

    init(timeout: UInt64, schedule: @escaping (UInt64) -> Void, expired: @escaping (Owner) -> Void) {
        self.timeout = timeout
        self.schedule = schedule
        self.expired = expired
    }

    /// Whether no entry is armed.
    var isEmpty: Bool { head == nil }

    /// (Re)arms `entry` for `owner`: its deadline becomes `now + timeout`, at the tail.
    func arm(_ entry: Entry, for owner: Owner, now: UInt64) {
        if entry.isArmed { unlink(entry) }
        entry.owner = owner
        entry.deadline = now &+ timeout
        entry.isArmed = true
        entry.previous = tail
        if let tail { tail.next = entry } else { head = entry }
        tail = entry
        if timerDeadline == nil && !expiring { requestTimer(for: entry.deadline) }
    }

    /// Takes `entry` out of the queue (its owner closed); nothing happens if it was not armed.
    func cancel(_ entry: Entry) {
        guard entry.isArmed else { return }
        unlink(entry)
    }

    /// Hands every owner whose deadline is at or before `now` to `expired`, oldest first, then
    /// asks for a timer for the new head.
    func expire(now: UInt64) {
        timerDeadline = nil
        expiring = true
        while let first = head, first.deadline <= now {
            let owner = first.owner
            unlink(first)
            if let owner { expired(owner) }
        }
        expiring = false
        if let first = head { requestTimer(for: first.deadline) }
    }

    private func requestTimer(for deadline: UInt64) {
        timerDeadline = deadline
        schedule(deadline)
    }

    private func unlink(_ entry: Entry) {
        if let previous = entry.previous { previous.next = entry.next } else { head = entry.next }
        if let next = entry.next { next.previous = entry.previous } else { tail = entry.previous }
        entry.next = nil
        entry.previous = nil
        entry.owner = nil
        entry.isArmed = false
    }
}
