/// The idle deadlines of one event loop's connections: a binary min-heap whose entries know
/// their own position, so arming, moving and cancelling a deadline are O(log n) with no
/// allocation, and one timer (for the earliest deadline) serves the whole loop.
///
/// Why not one `EventLoop.scheduleTask` per connection: NIO allocates a promise and a future
/// for each, and cancels by scanning every scheduled task of the loop under a lock, so closing a
/// connection costs O(open connections).
///
/// Not thread-safe: confine it to one event loop. Clock-agnostic: the caller passes deadlines
/// and `now`, and runs `expire(now:)` when the timer it was asked for (`schedule`) fires.
final class IdleQueue<Owner: AnyObject> {
    /// One owner's place in the queue; the owner keeps it for its whole life.
    final class Entry {
        /// Strong while armed: like a scheduled closure, an armed deadline keeps its owner alive.
        fileprivate var owner: Owner?
        /// Position in `heap`; -1 when not armed.
        fileprivate var index = -1
        /// When the owner goes idle, if it is not moved first.
        fileprivate(set) var deadline: UInt64 = 0

        var isArmed: Bool { index >= 0 }

        init() {}
    }

    private var heap: [Entry] = []
    /// The deadline of the earliest timer requested and not yet fired (nil: none pending).
    private var timerDeadline: UInt64?
    /// Inside `expire`: timers are requested once, at the end.
    private var expiring = false
    /// Asks for `expire(now:)` to run at a deadline (on the queue's loop).
    private let schedule: (UInt64) -> Void
    /// Called for every owner whose deadline passed, after it left the queue; it may arm again.
    private let expired: (Owner) -> Void

    init(schedule: @escaping (UInt64) -> Void, expired: @escaping (Owner) -> Void) {
        self.schedule = schedule
        self.expired = expired
    }

    /// Number of armed entries.
    var count: Int { heap.count }

    /// Arms `entry` for `owner` at `deadline`, or moves it there if it is armed already.
    func arm(_ entry: Entry, for owner: Owner, deadline: UInt64) {
        entry.owner = owner
        entry.deadline = deadline
        if entry.isArmed {
            siftUp(entry.index)
            siftDown(entry.index)
        } else {
            entry.index = heap.count
            heap.append(entry)
            siftUp(entry.index)
        }
        if !expiring { requestTimerIfEarlier() }
    }

    /// Takes `entry` out of the queue (its owner closed); nothing happens if it was not armed.
    func cancel(_ entry: Entry) {
        guard entry.isArmed else { return }
        remove(at: entry.index)
    }

    /// Hands every owner whose deadline is at or before `now` to `expired`, earliest first, then
    /// asks for a timer for the new earliest deadline.
    func expire(now: UInt64) {
        timerDeadline = nil
        expiring = true
        while let first = heap.first, first.deadline <= now {
            let owner = first.owner
            remove(at: 0)
            if let owner { expired(owner) }
        }
        expiring = false
        requestTimerIfEarlier()
    }

    private func requestTimerIfEarlier() {
        guard let first = heap.first else { return }
        if let pending = timerDeadline, pending <= first.deadline { return }
        timerDeadline = first.deadline
        schedule(first.deadline)
    }

    private func remove(at index: Int) {
        let entry = heap[index]
        let last = heap.removeLast()
        if index < heap.count {
            heap[index] = last
            last.index = index
            siftUp(index)
            siftDown(last.index)
        }
        entry.index = -1
        entry.owner = nil
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        heap[a].index = a
        heap[b].index = b
    }
}
