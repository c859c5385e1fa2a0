import Foundation
import Locking
import SharedBudget
import Synchronization
import Testing

/// The shared rate-limit budget (docs/shared-rate-limit.md): the limiter's logic on a fake
/// store and a manual clock, then the Redis store and its link against a real redis-server.
@Suite struct SharedBudgetTests {
    /// A store whose answers the test gives by hand.
    final class FakeStore: BudgetStore, @unchecked Sendable {  // guarded by `lock`
        let lock = NSLock()
        var reachable = true
        var asked: [(key: String, completion: @Sendable (Result<BudgetAnswer, RedisFailure>) -> Void)] = []
        var isReachable: Bool { lock.withLock { reachable } }
        func acquire(key: String, rate: Double, burst: Double,
                     completion: @escaping @Sendable (Result<BudgetAnswer, RedisFailure>) -> Void) {
            lock.withLock { asked.append((key, completion)) }
        }
        func stop() {}
        var count: Int { lock.withLock { asked.count } }
        /// Answers the oldest request.
        func answer(_ result: Result<BudgetAnswer, RedisFailure>) {
            let first = lock.withLock { asked.removeFirst() }
            first.completion(result)
        }
    }

    final class ManualTime: @unchecked Sendable {
        private let value = Atomic<UInt64>(1_000_000_000)
        func now() -> UInt64 { value.load(ordering: .relaxed) }
        func advance(milliseconds: UInt64) { value.wrappingAdd(milliseconds * 1_000_000, ordering: .relaxed) }
    }

    final class Outcomes: @unchecked Sendable {
        let list = Locked<[SharedLimiter.Outcome]>([])
        var all: [SharedLimiter.Outcome] { list.withLock { $0 } }
        func record(_ o: SharedLimiter.Outcome) { list.withLock { $0.append(o) } }
    }

    func limiter(_ store: FakeStore, _ time: ManualTime) -> SharedLimiter {
        SharedLimiter(store: store, settings: .init(keyPrefix: "t:", failuresToOpen: 3, probeInterval: 1_000_000_000),
                      clock: { time.now() })
    }

    @Test func aKeyDeniedByTheStoreIsDeniedLocallyUntilItsRetryTime() {
        let store = FakeStore(), time = ManualTime(), outcomes = Outcomes()
        let l = limiter(store, time)
        #expect(l.admit(key: "10.0.0.1", rate: 1, burst: 1, decided: outcomes.record) == nil)
        #expect(store.asked.first?.key == "t:10.0.0.1")
        store.answer(.success(.denied(retryAfterNanoseconds: 500_000_000)))
        #expect(outcomes.all == [.answered(.denied(retryAfterNanoseconds: 500_000_000))])
        // Until the retry time: denied without asking; another key still asks.
        #expect(l.admit(key: "10.0.0.1", rate: 1, burst: 1, decided: outcomes.record) == .cachedDenial)
        #expect(l.admit(key: "10.0.0.2", rate: 1, burst: 1, decided: outcomes.record) == nil)
        #expect(store.count == 1 && l.requests.count == 2 && l.cachedDenials.count == 1)
        time.advance(milliseconds: 500)
        #expect(l.admit(key: "10.0.0.1", rate: 1, burst: 1, decided: outcomes.record) == nil)
        l.dropExpiredDenials(now: time.now())
        #expect(l.cachedDenialCount == 0)
    }

    @Test func repeatedErrorsOpenTheCircuitThenOneProbeAtATimeClosesIt() {
        let store = FakeStore(), time = ManualTime(), outcomes = Outcomes()
        let l = limiter(store, time)
        for _ in 0..<3 {
            #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == nil)
            store.answer(.failure(.disconnected))
        }
        #expect(outcomes.all == [.unavailable, .unavailable, .unavailable])
        #expect(l.state == "degraded")
        // Open: nobody asks, nobody waits.
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == .unavailable)
        #expect(store.count == 0)
        time.advance(milliseconds: 1000)
        // One probe goes out; others keep the fallback while it is in flight.
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == nil)
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == .unavailable)
        store.answer(.success(.allowed))
        #expect(l.state == "ok")
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == nil)
        #expect(l.errors.count == 3 && l.fallbacks.count == 5 && l.requests.count == 5)
    }

    @Test func anUnreachableStoreFailsAtOnceAndATimeoutIsLate() {
        let store = FakeStore(), time = ManualTime(), outcomes = Outcomes()
        let l = limiter(store, time)
        store.lock.withLock { store.reachable = false }
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == .unavailable)
        #expect(store.count == 0 && l.errors.count == 1)
        store.lock.withLock { store.reachable = true }
        #expect(l.admit(key: "k", rate: 1, burst: 1, decided: outcomes.record) == nil)
        store.answer(.failure(.timedOut))
        #expect(outcomes.all == [.late])
        #expect(l.errors.count == 2 && l.fallbacks.count == 2)
    }

    @Test func endpointsParseAndTheirMistakesAreRefused() {
        #expect(RedisEndpoint("127.0.0.1:6379") == .tcp(host: "127.0.0.1", port: 6379))
        #expect(RedisEndpoint("[::1]:7000") == .tcp(host: "::1", port: 7000))
        #expect(RedisEndpoint("unix:/run/redis.sock") == .unix(path: "/run/redis.sock"))
        for bad in ["", "redis", "host:0", "host:70000", ":6379", "unix:relative"] { #expect(RedisEndpoint(bad) == nil, "\(bad)") }
        #expect(RedisEndpoint("[::1]:7000")?.description == "[::1]:7000")
    }

    // MARK: against a real redis-server

    /// Waits (bounded) for `count` completions of `store.acquire`.
    func acquire(_ store: RedisBudgetStore, key: String, rate: Double, burst: Double, times: Int) -> [Result<BudgetAnswer, RedisFailure>] {
        let results = Locked<[Result<BudgetAnswer, RedisFailure>]>([])
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<times {
            store.acquire(key: key, rate: rate, burst: burst) { r in
                results.withLock { $0.append(r) }
                done.signal()
            }
        }
        for _ in 0..<times { _ = done.wait(timeout: .now() + 30) }
        return results.withLock { $0 }
    }

    func connectedStore(_ redis: RedisServer, timeout: UInt64 = 5_000_000_000) -> RedisBudgetStore {
        let store = RedisBudgetStore(endpoint: RedisEndpoint(redis.endpoint)!, timeout: timeout, reconnectInterval: 50_000_000)
        _ = eventually { store.link.isConnected }
        return store
    }

    @Test func aThousandPipelinedAdmissionsTakeExactlyTheBurstWithOneCommandEach() throws {
        let redis = try RedisServer()
        let store = connectedStore(redis)
        defer { store.stop(); redis.stop() }
        let before = redis.calls(of: "evalsha") + redis.calls(of: "eval")
        let results = acquire(store, key: "burst", rate: 0.001, burst: 20, times: 1000)
        #expect(results.count == 1000)
        #expect(results.filter { $0 == .success(.allowed) }.count == 20)
        let denied = results.compactMap { r -> UInt64? in if case .success(.denied(let ns)) = r { ns } else { nil } }
        #expect(denied.count == 980)
        #expect(denied.allSatisfy { $0 > 900_000_000_000 })  // one token per 1000 s
        #expect(redis.calls(of: "evalsha") + redis.calls(of: "eval") - before == 1000)
    }

    @Test func theScriptSurvivesAFlushAndKeysExpireWhenTheBucketRefills() throws {
        let redis = try RedisServer()
        let store = connectedStore(redis)
        defer { store.stop(); redis.stop() }
        #expect(acquire(store, key: "a", rate: 4, burst: 5, times: 1) == [.success(.allowed)])
        redis.cli("SCRIPT", "FLUSH")
        #expect(acquire(store, key: "a", rate: 4, burst: 5, times: 1) == [.success(.allowed)])
        #expect(redis.keyCount == 1)
        // Full again half a second later at 4 per second: the key is gone.
        #expect(eventually { redis.keyCount == 0 })
    }

    @Test func aStoppedRedisFailsAtOnceAndABackOneServesAgain() throws {
        let redis = try RedisServer()
        let store = connectedStore(redis)
        defer { store.stop(); redis.stop() }
        redis.stop()
        #expect(eventually { !store.isReachable })
        let failed = acquire(store, key: "k", rate: 1, burst: 1, times: 1)
        #expect(failed.count == 1 && (try? failed[0].get()) == nil)
        try redis.start()
        #expect(eventually { store.link.isConnected })
        #expect(acquire(store, key: "k", rate: 1, burst: 1, times: 1) == [.success(.allowed)])
    }

    @Test func aRedisThatIsNotThereFailsAtOnceFromTheStart() {
        let store = RedisBudgetStore(endpoint: .unix(path: TestEnvironment.temporaryDirectory() + "/none.sock"),
                                     timeout: 60_000_000_000)
        defer { store.stop() }
        #expect(eventually { !store.isReachable })
        // Not queued for a connect that cannot come: answered well before the 60 s timeout.
        let failed = acquire(store, key: "k", rate: 1, burst: 1, times: 1)
        #expect(failed == [.failure(.notConnected)])
    }

    @Test func aPausedRedisTimesOutWithoutBlockingTheCaller() throws {
        let redis = try RedisServer()
        let store = connectedStore(redis, timeout: 50_000_000)
        defer { store.stop(); redis.stop() }
        redis.cli("CLIENT", "PAUSE", "3000", "ALL")
        #expect(acquire(store, key: "k", rate: 1, burst: 1, times: 3) == Array(repeating: .failure(.timedOut), count: 3))
        redis.cli("CLIENT", "UNPAUSE")
        #expect(eventually { acquire(store, key: "k2", rate: 1, burst: 1, times: 1) == [.success(.allowed)] })
    }
}
