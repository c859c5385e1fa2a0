/// One upstream's circuit (docs/pipeline-reference.md, "Stock stages"). Pure logic over monotonic nanoseconds.
///
/// closed → open when `maxFailures` connect failures fall within the sliding `failureWindow`
/// (the last `maxFailures` failure times are kept: bounded memory, an exact sliding window);
/// open → half-open after `resetTimeout`; half-open admits at most `halfOpenMaxCalls` trials
/// at a time; `halfOpenMaxCalls` successful trials close it; any trial failure opens it again
/// with a fresh timer.
struct Circuit: Sendable {
    enum State: String, Sendable { case closed, open, halfOpen = "half_open" }

    struct Settings: Sendable {
        var maxFailures: Int
        var failureWindow: UInt64
        var resetTimeout: UInt64
        var halfOpenMaxCalls: Int
    }

    let name: String
    private(set) var state = State.closed
    /// Times of recent failures, oldest first, at most maxFailures.
    private(set) var failures: [UInt64] = []
    private(set) var openedAt: UInt64 = 0
    /// Trials admitted and not yet reported.
    private(set) var trialsInFlight = 0
    private(set) var trialSuccesses = 0
    private(set) var transitions: [String: UInt64] = [:]
    private(set) var rejections: UInt64 = 0
    private(set) var lastChangeWall: UInt64 = 0

    init(name: String) { self.name = name }

    /// Moves open → half-open once the reset timeout has passed.
    mutating func advance(now: UInt64, settings: Settings, wall: UInt64) {
        if state == .open, now &- openedAt >= settings.resetTimeout {
            move(to: .halfOpen, wall: wall)
            trialsInFlight = 0
            trialSuccesses = 0
        }
    }

    /// Whether a connection may try this upstream now; for half-open, reserves a trial.
    mutating func admit(now: UInt64, settings: Settings, wall: UInt64) -> Bool {
        advance(now: now, settings: settings, wall: wall)
        switch state {
        case .closed: return true
        case .open: return false
        case .halfOpen:
            guard trialsInFlight < settings.halfOpenMaxCalls else { return false }
            trialsInFlight += 1
            return true
        }
    }

    /// Gives back a trial reservation that was not used (the connection chose another).
    mutating func release() {
        if state == .halfOpen, trialsInFlight > 0 { trialsInFlight -= 1 }
    }

    /// Records the outcome of an attempt on this upstream (`reserved`: it held a trial).
    mutating func record(success: Bool, reserved: Bool, now: UInt64, settings: Settings, wall: UInt64) {
        if reserved { release() }
        switch state {
        case .closed:
            guard !success else { return }
            failures.append(now)
            if failures.count > settings.maxFailures { failures.removeFirst(failures.count - settings.maxFailures) }
            if failures.count >= settings.maxFailures, let oldest = failures.first, now &- oldest <= settings.failureWindow {
                trip(now: now, wall: wall)
            }
        case .halfOpen:
            if success {
                trialSuccesses += 1
                if trialSuccesses >= settings.halfOpenMaxCalls { reset(wall: wall) }
            } else {
                trip(now: now, wall: wall)
            }
        case .open:
            if !success { openedAt = now }  // a straggler's failure: keep it open from now
        }
    }

    /// Failures within the window ending `now`.
    func failuresInWindow(now: UInt64, settings: Settings) -> Int {
        failures.filter { now &- $0 <= settings.failureWindow }.count
    }

    mutating func trip(now: UInt64, wall: UInt64) {
        move(to: .open, wall: wall)
        openedAt = now
        trialsInFlight = 0
        trialSuccesses = 0
    }

    mutating func reset(wall: UInt64) {
        move(to: .closed, wall: wall)
        failures.removeAll()
        trialsInFlight = 0
        trialSuccesses = 0
    }

    mutating func countRejection() { rejections += 1 }

    private mutating func move(to next: State, wall: UInt64) {
        guard next != state else { return }
        transitions["\(state.rawValue)_to_\(next.rawValue)", default: 0] += 1
        state = next
        lastChangeWall = wall
    }
}
