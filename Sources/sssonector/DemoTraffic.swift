import Locking
import Foundation
import SSSonectorCore
import Synchronization
import SSSonectorDemo

/// The demo's load: clients on threads, each sending a message and checking its echo.
enum DemoTraffic {
    struct Report {
        var messages = 0
        var bytes = 0
        var failures = 0
        var corrupted = false
    }

    static func drive(host: String, port: Int, clients: Int, payload: Int, seconds: Int,
                      progress: (Int, Int, Int) -> Void) -> Report {
        let messages = Atomic<Int>(0)
        let bytes = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let corrupted = Atomic<Bool>(false)
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let message = (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ client) }
                while Date() < deadline {
                    do {
                        let connection = try BlockingTCPClient(host: host, port: port, timeoutSeconds: 5)
                        for _ in 0..<50 where Date() < deadline {
                            try connection.send(message)
                            let echoed = try connection.receive(exactly: message.count)
                            if echoed != message { corrupted.store(true, ordering: .relaxed) }
                            messages.wrappingAdd(1, ordering: .relaxed)
                            bytes.wrappingAdd(message.count, ordering: .relaxed)
                        }
                        connection.shutdownWrite()
                        _ = try connection.receiveToEnd()
                    } catch {
                        failures.wrappingAdd(1, ordering: .relaxed)
                        Thread.sleep(forTimeInterval: 0.05)
                    }
                }
            }
        }
        var elapsed = 0
        while group.wait(timeout: .now() + 1) == .timedOut {
            elapsed += 1
            progress(elapsed, messages.load(ordering: .relaxed), bytes.load(ordering: .relaxed))
        }
        return Report(messages: messages.load(ordering: .relaxed), bytes: bytes.load(ordering: .relaxed),
                      failures: failures.load(ordering: .relaxed), corrupted: corrupted.load(ordering: .relaxed))
    }
}

/// Runs an async operation from synchronous CLI code.
func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Locked<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { let v = try await body(); result.withLock { $0 = .success(v) } } catch { result.withLock { $0 = .failure(error) } }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
