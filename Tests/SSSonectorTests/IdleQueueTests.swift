import Testing
@testable import SSSonectorCore

/// The idle-deadline queue with a manual clock: order, cancel, moves, and the one timer it asks for.
@Suite struct IdleQueueTests {
    final class Owner {
        let name: String
        let entry = IdleQueue<Owner>.Entry()
        init(_ name: String) { self.name = name }
    }

    /// A queue whose timer requests and expiries are recorded.
    final class Recorder {
        var timers: [UInt64] = []
        var expired: [String] = []
        var onExpiry: (Owner) -> Void = { _ in }
        lazy var queue = IdleQueue<Owner>(
            schedule: { [unowned self] in timers.append($0) },
            expired: { [unowned self] owner in
                expired.append(owner.name)
                onExpiry(owner)
            })
    }

    @Test func ownersExpireEarliestFirstAndOnlyOnceTheirDeadlinePassed() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b"), c = Owner("c")
        r.queue.arm(c.entry, for: c, deadline: 120)
        r.queue.arm(a.entry, for: a, deadline: 100)
        r.queue.arm(b.entry, for: b, deadline: 110)
        #expect(r.timers == [120, 100])  // a timer only when the earliest deadline moves earlier
        r.queue.expire(now: 99)
        #expect(r.expired.isEmpty)
        #expect(r.timers.last == 100)  // fired early: asks again for the same deadline
        r.queue.expire(now: 110)
        #expect(r.expired == ["a", "b"])
        #expect(r.timers.last == 120)
        r.queue.expire(now: 500)
        #expect(r.expired == ["a", "b", "c"])
        #expect(r.queue.count == 0)
        let requests = r.timers.count
        r.queue.expire(now: 600)
        #expect(r.timers.count == requests)  // nothing armed: no further timer
    }

    @Test func cancelledOwnersNeverExpireWhereverTheySitInTheHeap() {
        let r = Recorder()
        // Twenty distinct deadlines in scrambled order (7 and 20 are coprime).
        let deadline = { (i: Int) in UInt64(100 + (i * 7) % 20 * 10) }
        let owners = (0..<20).map { Owner("\($0)") }
        for (i, o) in owners.enumerated() { r.queue.arm(o.entry, for: o, deadline: deadline(i)) }
        for (i, o) in owners.enumerated() where i % 3 == 0 {
            r.queue.cancel(o.entry)
            r.queue.cancel(o.entry)  // a second cancel does nothing
            #expect(!o.entry.isArmed)
        }
        r.queue.expire(now: 10_000)
        let kept = (0..<20).filter { $0 % 3 != 0 }.sorted { deadline($0) < deadline($1) }
        #expect(r.expired == kept.map { "\($0)" })
    }

    @Test func movingAnArmedOwnerChangesWhenItExpires() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b")
        r.queue.arm(a.entry, for: a, deadline: 100)
        r.queue.arm(b.entry, for: b, deadline: 150)
        r.queue.arm(a.entry, for: a, deadline: 160)  // activity: a is due later than b now
        #expect(r.queue.count == 2)
        r.queue.expire(now: 150)
        #expect(r.expired == ["b"])
        #expect(r.timers.last == 160)
        r.queue.expire(now: 160)
        #expect(r.expired == ["b", "a"])
    }

    @Test func anOwnerMovedDuringExpiryDoesNotHideAnEarlierDeadline() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b")
        r.onExpiry = { owner in if owner.name == "a" { r.queue.arm(a.entry, for: a, deadline: 200) } }
        r.queue.arm(a.entry, for: a, deadline: 100)
        r.queue.arm(b.entry, for: b, deadline: 130)
        r.queue.expire(now: 100)
        #expect(r.expired == ["a"])
        #expect(r.timers == [100, 130])  // b's deadline, not a's new 200
        r.queue.expire(now: 130)
        #expect(r.expired == ["a", "b"])
        #expect(r.timers.last == 200)
    }

    @Test func anArmedEntryKeepsItsOwnerAliveUntilCancelled() {
        let r = Recorder()
        weak var weakOwner: Owner?
        var entry: IdleQueue<Owner>.Entry?
        do {
            let owner = Owner("x")
            weakOwner = owner
            entry = owner.entry
            r.queue.arm(owner.entry, for: owner, deadline: 5)
        }
        #expect(weakOwner != nil)
        r.queue.cancel(entry!)
        #expect(weakOwner == nil)
    }
}
