import Locking
import Synchronization

/// Where the shared budget's buckets live: Redis in production, a fake in unit tests.
public protocol BudgetStore: Sendable {
    /// Takes one token from `key`'s bucket (`rate` per second, `burst`). `completion` runs once,
    /// on any thread, with the answer or why there is none.
    func acquire(key: String, rate: Double, burst: Double,
                 completion: @escaping @Sendable (Result<BudgetAnswer, RedisFailure>) -> Void)
    /// Whether asking now can succeed (connected, or connecting): false fails at once.
    var isReachable: Bool { get }
    /// Stops the store; what is in flight completes with a failure.
    func stop()
}

/// The budget in Redis: one `EVALSHA` of `GCRAScript` per admission on one pipelined
/// connection (`RedisLink`). The script is loaded on each new connection (`SCRIPT LOAD`);
/// until its SHA is known, or after Redis forgot it (`NOSCRIPT`, after a `SCRIPT FLUSH` or a
/// restart), the call carries the script itself (`EVAL`).
public final class RedisBudgetStore: BudgetStore {
    public let link: RedisLink
    private let sha = Locked<String?>(nil)
    /// Commands sent to Redis (each admission's, a NOSCRIPT retry's, SCRIPT LOAD's).
    public let commands = Counter()

    public init(endpoint: RedisEndpoint, timeout: UInt64, reconnectInterval: UInt64 = 500_000_000) {
        let sha = self.sha
        let commands = self.commands
        link = RedisLink(endpoint: endpoint, timeout: max(timeout, 1_000_000), reconnectInterval: reconnectInterval) { link in
            sha.withLock { $0 = nil }
            commands.add()
            link.sendFromLinkThread(["SCRIPT", "LOAD", GCRAScript.source]) { result in
                if case .success(.string(let digest)) = result { sha.withLock { $0 = digest } }
            }
        }
    }

    public var isReachable: Bool { link.isReachable }

    public func acquire(key: String, rate: Double, burst: Double,
                        completion: @escaping @Sendable (Result<BudgetAnswer, RedisFailure>) -> Void) {
        let args = [key, GCRAScript.intervalArgument(rate: rate), GCRAScript.burstArgument(burst)]
        let digest = sha.withLock { $0 }
        commands.add()
        let sha = self.sha
        let link = self.link
        let commands = self.commands
        let first: [String] = digest.map { ["EVALSHA", $0, "1"] } ?? ["EVAL", GCRAScript.source, "1"]
        link.send(first + args) { result in
            switch result {
            case .success(.error(let text)) where text.hasPrefix("NOSCRIPT"):
                sha.withLock { $0 = nil }
                commands.add()
                link.sendFromLinkThread(["EVAL", GCRAScript.source, "1"] + args) { completion(Self.answer($0)) }
            default:
                completion(Self.answer(result))
            }
        }
    }

    static func answer(_ result: Result<RedisReply, RedisFailure>) -> Result<BudgetAnswer, RedisFailure> {
        switch result {
        case .success(let reply):
            if case .error(let text) = reply { return .failure(.server(text)) }
            guard let answer = GCRAScript.answer(reply) else { return .failure(.server("unexpected reply \(reply)")) }
            return .success(answer)
        case .failure(let failure):
            return .failure(failure)
        }
    }

    public func stop() { link.stop() }
}

/// A relaxed counter for figures.
public final class Counter: Sendable {
    private let value = Atomic<UInt64>(0)
    public init() {}
    public func add(_ n: UInt64 = 1) { value.wrappingAdd(n, ordering: .relaxed) }
    public var count: UInt64 { value.load(ordering: .relaxed) }
}
