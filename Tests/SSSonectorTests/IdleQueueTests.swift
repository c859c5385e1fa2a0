import Testing
@testable import SSSonectorCore

/// The idle-deadline queue with a manual clock: order, cancel, re-arm, and the one timer it asks for.
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
            timeout: 100,
            schedule: { [unowned self] in timers.append($0) },
            expired: { [unowned self] owner in
                expired.append(owner.name)
                onExpiry(owner)
            })
    }

    @Test func ownersExpireOldestFirstAndOnlyOnceTheirDeadlinePassed() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b"), c = Owner("c")
        r.queue.arm(a.entry, for: a, now: 0)
        r.queue.arm(b.entry, for: b, now: 10)
        r.queue.arm(c.entry, for: c, now: 20)
        #expect(r.timers == [100])  // one timer, for the head
        r.queue.expire(now: 99)
        #expect(r.expired.isEmpty)
        #expect(r.timers == [100, 100])  // fired early: asks again for the same head
        r.queue.expire(now: 110)
        #expect(r.expired == ["a", "b"])
        #expect(r.timers.last == 120)
        r.queue.expire(now: 500)
        #expect(r.expired == ["a", "b", "c"])
        #expect(r.queue.isEmpty)
        #expect(r.timers.count == 3)  // nothing left: no further timer
    }

    @Test func cancelledOwnersNeverExpireAndTheirMiddleSlotIsUnlinked() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b"), c = Owner("c")
        r.queue.arm(a.entry, for: a, now: 0)
        r.queue.arm(b.entry, for: b, now: 1)
        r.queue.arm(c.entry, for: c, now: 2)
        r.queue.cancel(b.entry)
        r.queue.cancel(b.entry)  // a second cancel does nothing
        r.queue.cancel(a.entry)
        r.queue.expire(now: 1000)
        #expect(r.expired == ["c"])
        #expect(r.queue.isEmpty)
    }

    @Test func reArmingMovesAnOwnerToTheTailWithANewDeadline() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b")
        r.queue.arm(a.entry, for: a, now: 0)
        r.queue.arm(b.entry, for: b, now: 50)
        r.queue.arm(a.entry, for: a, now: 60)  // activity: a's deadline is now 160, after b's 150
        r.queue.expire(now: 150)
        #expect(r.expired == ["b"])
        #expect(r.timers.last == 160)
        r.queue.expire(now: 160)
        #expect(r.expired == ["b", "a"])
    }

    @Test func anOwnerReArmedDuringExpiryDoesNotHideAnEarlierDeadline() {
        let r = Recorder()
        let a = Owner("a"), b = Owner("b")
        r.onExpiry = { owner in if owner.name == "a" { r.queue.arm(a.entry, for: a, now: 100) } }
        r.queue.arm(a.entry, for: a, now: 0)
        r.queue.arm(b.entry, for: b, now: 30)
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
            r.queue.arm(owner.entry, for: owner, now: 0)
        }
        #expect(weakOwner != nil)
        r.queue.cancel(entry!)
        #expect(weakOwner == nil)
    }
}
