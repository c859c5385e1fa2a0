import ConfigValues
import Foundation
import Locking
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// `ratelimit` with `shared` (docs/shared-rate-limit.md): real host processes sharing one real
/// redis-server, clients on loopback.
@Suite struct SharedRateLimitEndToEndTests {
    /// A host whose pipeline `name` runs `ratelimit` with `config`.
    static func host(_ name: String = "test", upstream: Int, config: String, connection: String = "{}",
                     more: [String] = [], pipelines: Int = 2) throws -> HostProcess {
        let file = pipelineFile(name: name, upstreams: [("e", upstream)],
                                stages: #"[{"name": "limit", "plugin": "ratelimit", "config": \#(config)}]"#,
                                connection: connection)
        return try HostProcess(["run", "--admin", "127.0.0.1:0", file] + more, pipelines: pipelines)
    }

    /// One attempt: connects, sends a byte, and says whether it came back (admitted) or the
    /// connection was closed (rejected).
    static func admitted(port: Int) -> Bool {
        guard let client = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 20) else { return false }
        try? client.send([42])
        return (try? client.receive(exactly: 1)) == [42]
    }

    static func stageStats(_ host: HostProcess, pipeline: String = "test") -> JSONValue {
        guard let admin = host.adminPort, let (_, json) = try? httpJSON("GET", port: admin, "/stats") else { return .null }
        return json["pipelines"]?[pipeline]?["stages"]?["limit"] ?? .null
    }

    @Test func threeHostsAdmitOneBudgetBetweenThemBurstPlusRateTimesTime() async throws {
        let redis = try RedisServer()
        let echo = try await EchoUpstreams(count: 1)
        let (rate, burst) = (2.0, 30)
        let config = #"{"default_rate": \#(rate), "default_burst": \#(burst), "key": "global", "shared": {"redis": "\#(redis.endpoint)", "timeout": "2s", "on_error": "deny"}}"#
        let hosts = try (0..<3).map { _ in try Self.host(upstream: echo.ports[0], config: config, connection: #"{"open_timeout": "3s"}"#) }
        defer { hosts.forEach { $0.stop() }; redis.stop() }
        let ports = hosts.map { $0.port(of: "test")! }
        let start = Date()
        // 500 connects at once across the three hosts, all waiting for Redis together.
        var clients: [BlockingTCPClient] = []
        for i in 0..<500 { clients.append(try BlockingTCPClient(host: "127.0.0.1", port: ports[i % 3], timeoutSeconds: 20)) }
        for client in clients { try? client.send([42]) }
        let firstWave = clients.filter { (try? $0.receive(exactly: 1)) == [42] }.count
        let firstElapsed = Date().timeIntervalSince(start)
        #expect(firstWave >= burst && firstWave <= burst + Int(rate * firstElapsed) + 1, "admitted \(firstWave) in \(firstElapsed) s")
        clients.removeAll()
        // Then steady demand from every host for three seconds more, from threads of their own
        // (not tasks: the test pool's few threads may be busy with other tests for longer).
        let later = Locked((admitted: 0, lastAttemptStarted: Date()))
        let end = Date().addingTimeInterval(3)
        let done = DispatchSemaphore(value: 0)
        for port in ports {
            Thread {
                while Date() < end {
                    let attempt = Date()
                    let ok = Self.admitted(port: port)
                    later.withLock { $0.admitted += ok ? 1 : 0; $0.lastAttemptStarted = max($0.lastAttemptStarted, attempt) }
                }
                done.signal()
            }.start()
        }
        for _ in ports { done.wait() }
        let elapsed = Date().timeIntervalSince(start)
        let lastAttemptStarted = later.withLock { $0.lastAttemptStarted }.timeIntervalSince(start)
        let total = firstWave + later.withLock { $0.admitted }
        // Admitted = burst + rate × time, ±1, over the whole window, whichever host took them.
        #expect(total >= burst + Int(rate * lastAttemptStarted) - 1 && total <= burst + Int(rate * elapsed) + 1,
                "admitted \(total) in \(elapsed) s")
        let allowed = hosts.map { Self.stageStats($0)["allowed"]?.intValue ?? -1 }
        #expect(allowed.reduce(0, +) == total)
        #expect(hosts.allSatisfy { Self.stageStats($0)["shared"]?["errors"]?.intValue == 0 })
        await echo.stop()
    }

    @Test func withRedisStoppedTheLocalBucketServesAndRedisBackResumesSharing() async throws {
        let redis = try RedisServer()
        let echo = try await EchoUpstreams(count: 1)
        let config = #"{"default_rate": 1000, "default_burst": 1000, "shared": {"redis": "\#(redis.endpoint)", "timeout": "50ms", "on_error": "local", "probe_interval": "2s"}}"#
        let hosts = try (0..<2).map { _ in try Self.host(upstream: echo.ports[0], config: config) }
        defer { hosts.forEach { $0.stop() }; redis.stop() }
        let ports = hosts.map { $0.port(of: "test")! }
        for port in ports { #expect(Self.admitted(port: port)) }
        #expect(redis.calls(of: "evalsha") + redis.calls(of: "eval") == 2)
        redis.stop()
        // Every connection is still served (by each host's own bucket), and the circuit opens.
        for _ in 0..<10 { for port in ports { #expect(Self.admitted(port: port)) } }
        for host in hosts {
            let shared = Self.stageStats(host)["shared"]
            #expect(shared?["state"] == "degraded", "\(String(describing: shared))")
            #expect((shared?["fallbacks"]?.intValue ?? 0) >= 5)
        }
        // While it is open, admissions do not ask Redis (at most one probe per interval).
        let before = Self.stageStats(hosts[0])["shared"]?["requests"]?.intValue ?? -1
        let quiet = Date()
        for _ in 0..<20 { #expect(Self.admitted(port: ports[0])) }
        let after = Self.stageStats(hosts[0])["shared"]?["requests"]?.intValue ?? -1
        #expect(after - before <= Int(Date().timeIntervalSince(quiet) / 2) + 1)
        try redis.start()
        #expect(eventually(30) {
            for port in ports { _ = Self.admitted(port: port) }
            return hosts.allSatisfy { Self.stageStats($0)["shared"]?["state"] == "ok" }
        })
        let resumed = redis.calls(of: "evalsha") + redis.calls(of: "eval")
        for port in ports { #expect(Self.admitted(port: port)) }
        #expect(redis.calls(of: "evalsha") + redis.calls(of: "eval") - resumed == 2)
        await echo.stop()
    }

    @Test func aPausedRedisStallsNoEventLoopAndKeysExpire() async throws {
        let redis = try RedisServer()
        let echo = try await EchoUpstreams(count: 1)
        let config = #"{"default_rate": 1000, "default_burst": 100, "shared": {"redis": "\#(redis.endpoint)", "timeout": "50ms"}}"#
        let plain = pipelineFile(name: "plain", upstreams: [("e", echo.ports[0])])
        let host = try Self.host("limited", upstream: echo.ports[0], config: config, more: [plain], pipelines: 3)
        defer { host.stop(); redis.stop() }
        let limited = try #require(host.port(of: "limited"))
        let other = try #require(host.port(of: "plain"))
        #expect(Self.admitted(port: limited))
        // Scripts wait (WRITE mode pauses EVAL/EVALSHA; CLIENT UNPAUSE still gets through) far
        // longer than the clients' own 20 s timeout: a blocked loop would fail them.
        redis.cli("CLIENT", "PAUSE", "120000", "WRITE")
        for _ in 0..<20 {
            #expect(Self.admitted(port: other))
            #expect(Self.admitted(port: limited))  // the local bucket, after the 50 ms timeout
        }
        let admin = try #require(host.adminPort)
        let connections = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["limited"]?["connections"]
        #expect((connections?["open_timeouts"]?.intValue ?? 0) + (Self.stageStats(host, pipeline: "limited")["shared"]?["fallbacks"]?.intValue ?? 0) >= 20)
        redis.cli("CLIENT", "UNPAUSE")
        #expect(eventually(30) { _ = Self.admitted(port: limited); return Self.stageStats(host, pipeline: "limited")["shared"]?["state"] == "ok" })
        // Every bucket is full again within a tenth of a second at 1,000 per second: no key stays.
        #expect(eventually { redis.keyCount == 0 })
        await echo.stop()
    }
}
