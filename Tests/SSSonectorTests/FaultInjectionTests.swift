import ConfigValues
import Foundation
import Dispatch
import Glibc
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// Faults injected into a real host over loopback: clients that stall a TLS handshake, a flood
/// against `max_connections` across a reload, misbehaving plugins, the admin API attacked with
/// oversized bodies, and a descriptor table that runs full. Each is bounded in time and count.
@Suite struct FaultInjectionTests {
    func startHost(_ file: String, arguments: [String] = []) throws -> (HostProcess, port: Int, admin: Int) {
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0"] + arguments + [file], pipelines: 2)
        let name = (try? JSONValue.parse(String(contentsOfFile: file, encoding: .utf8)))?["name"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "test"
        guard let port = host.port(of: name), let admin = host.adminPort else {
            host.stop()
            throw HostStartError(stderr: host.stderr)
        }
        return (host, port, admin)
    }

    func connections(_ admin: Int, _ pipeline: String = "test") throws -> JSONValue {
        try httpJSON("GET", port: admin, "/stats").json["pipelines"]?[pipeline]?["connections"] ?? .null
    }

    func echoes(_ port: Int, _ bytes: [UInt8]) -> Bool {
        guard let c = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 5) else { return false }
        return (try? c.send(bytes)) != nil && (try? c.receive(exactly: bytes.count)) == bytes
    }

    @Test func stalledTLSHandshakesAreClosedWithinConnectTimeoutAndLockNobodyOut() async throws {
        let dir = TestEnvironment.temporaryDirectory() + "/certs"
        #expect(try HostProcess.runToEnd(["certs", "init", "--out", dir, "--name", "localhost"]).status == 0)
        let echo = try await EchoUpstreams(count: 1)
        let file = TestEnvironment.writeFile("tls.json", """
        {"version": 1, "name": "test", "listen": {"address": "127.0.0.1:0",
          "tls": {"cert": "\(dir)/server.pem", "key": "\(dir)/server.key", "client_ca": "\(dir)/ca.pem"}},
         "upstreams": [{"name": "e", "address": "127.0.0.1:\(echo.ports[0])"}],
         "connection": {"max_connections": 3, "connect_timeout": "300ms", "idle_timeout": "5m"}}
        """)
        let (host, port, admin) = try startHost(file)
        defer { host.stop() }
        // Three clients that connect and send nothing fill max_connections; each is closed by
        // the handshake deadline, not the 5-minute idle timeout (the read would time out first).
        let stalled = try (0..<3).map { _ in try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 20) }
        for client in stalled { #expect(try client.receiveToEnd() == []) }
        #expect(eventually { (try? connections(admin)["rejected"]?["tls_handshake"]) == .number(3) })
        #expect(try connections(admin)["rejected"]?["overload"] == nil)
        // Garbage and plaintext on the TLS listener are refused the same way.
        let garbage = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 20)
        try garbage.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        _ = try? garbage.receiveToEnd()
        #expect(eventually { (try? connections(admin)["rejected"]?["tls_handshake"]) == .number(4) })
        await echo.stop()
    }

    @Test func maxConnectionsHoldsAcrossReloads() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])], connection: #"{"max_connections": 3}"#)
        let (host, port, admin) = try startHost(file)
        defer { host.stop() }
        let held = try (0..<3).map { _ in try BlockingTCPClient(host: "127.0.0.1", port: port) }
        for (k, client) in held.enumerated() {
            try client.send([UInt8(k)])
            #expect(try client.receive(exactly: 1) == [UInt8(k)])
        }
        for _ in 0..<3 {
            #expect(try httpJSON("POST", port: admin, "/reload").status == 200)
            // Over the limit: closed at once without an echo, on every generation.
            // (A connection let in would stay open: the read would time out and throw.)
            let extra = try BlockingTCPClient(host: "127.0.0.1", port: port)
            #expect(try extra.receiveToEnd() == [])
            #expect(eventually { (try? connections(admin)["rejected"]?["overload"]) == .number(1) })
        }
        // The held connections still flow on their first configuration; once one leaves, a
        // place is free again.
        for client in held { try client.send([7]); #expect(try client.receive(exactly: 1) == [7]) }
        held[0].shutdownWrite()
        _ = try held[0].receiveToEnd()
        #expect(eventually { echoes(port, [1, 2, 3]) })
        await echo.stop()
    }

    func misbehaving(_ mode: String, connection: String = "{}", upstreams: [(String, Int)] = [("e", 9)], name: String = "test") throws -> String {
        let plugin = try CPlugins.misbehaving()
        return pipelineFile(name: name, upstreams: upstreams, stages: #"[{"name": "bad", "plugin": "\#(plugin)", "config": {"mode": "\#(mode)"}}]"#,
                            connection: connection)
    }

    @Test func controlAndStatsAnswersOfAStageAreChecked() throws {
        for (mode, expected) in [("control_garbage", "text that is not JSON"), ("control_empty", "an empty answer"),
                                 ("control_status", "status 42, which the stage ABI does not define")] {
            let (host, _, admin) = try startHost(try misbehaving(mode))
            defer { host.stop() }
            let answer = try http("POST", port: admin, "/pipelines/test/stages/bad/control", body: #"{"op": "get"}"#)
            #expect(answer.status == 502, "\(mode): \(answer)")
            let json = try JSONValue.parse(answer.body)
            guard case .string(let message)? = json["error"] else { Issue.record("\(mode): \(answer.body)"); continue }
            #expect(message.hasPrefix("stage bad answered with \(expected)"), "\(mode): \(answer.body)")
        }
        let (host, _, admin) = try startHost(try misbehaving("stats_garbage"))
        defer { host.stop() }
        let stats = try httpJSON("GET", port: admin, "/stats")
        #expect(stats.status == 200)
        #expect(stats.json["pipelines"]?["test"]?["stages"]?["bad"]?["error"] == "the stage wrote stats that are not JSON")
        #expect(eventually { host.stderr.contains("stage=bad") && host.stderr.contains("stats that are not JSON") })
    }

    @Test func misbehavingHooksAreClampedOrRefusedAndLoseNoBytes() async throws {
        let echo = try await EchoUpstreams(count: 1)
        // A verdict outside the ABI fails closed.
        do {
            let (host, port, admin) = try startHost(try misbehaving("open_verdict", upstreams: [("e", echo.ports[0])]))
            defer { host.stop() }
            #expect(!echoes(port, [1]))
            #expect(eventually { (try? connections(admin)["rejected"]?["policy"]) == .number(1) })
        }
        // Grants larger than the offer and an endless re-offer delay: every byte still arrives.
        do {
            let (host, port, _) = try startHost(try misbehaving("greedy_grant", upstreams: [("e", echo.ports[0])]))
            defer { host.stop() }
            let data = pattern(300_000)
            let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try c.send(data)
            #expect(try c.receive(exactly: data.count) == data)
            #expect(eventually { host.stderr.contains("granted more bytes than offered") })
        }
        // A post with a reason the ABI does not define is refused; the connection lives on.
        do {
            let (host, port, _) = try startHost(try misbehaving("post_bad_reason", upstreams: [("e", echo.ports[0])]))
            defer { host.stop() }
            let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try c.send([5]); #expect(try c.receive(exactly: 1) == [5])
            try c.send([6]); #expect(try c.receive(exactly: 1) == [6])
        }
        await echo.stop()
    }

    @Test func aStageCannotCloseAnotherPipelinesConnections() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let victim = pipelineFile(name: "victim", upstreams: [("e", echo.ports[0])])
        let attacker = try misbehaving("post_foreign", upstreams: [("e", echo.ports[0])], name: "attacker")
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", victim, attacker], pipelines: 3)
        defer { host.stop() }
        let victimPort = try #require(host.port(of: "victim"))
        let attackerPort = try #require(host.port(of: "attacker"))
        let held = try BlockingTCPClient(host: "127.0.0.1", port: victimPort)
        try held.send([1]); #expect(try held.receive(exactly: 1) == [1])
        // Every connection of the attacker's pipeline posts a close to every earlier id.
        for _ in 0..<3 { #expect(echoes(attackerPort, [2])) }
        try held.send([3]); #expect(try held.receive(exactly: 1) == [3])
        await echo.stop()
    }

    @Test func theAdminAPIRefusesOversizedBodiesAndSurvivesIdleAndBadRequests() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let (host, _, admin) = try startHost(pipelineFile(upstreams: [("e", echo.ports[0])],
                                                          stages: #"[{"name": "rl", "plugin": "ratelimit", "config": {"default_rate": 10}}]"#))
        defer { host.stop() }
        // A 10 MiB body in three writes: refused whole with 413, nothing executed.
        let c = try BlockingTCPClient(host: "127.0.0.1", port: admin)
        let total = 10 << 20
        try c.send(Array("POST /pipelines/test/stages/rl/control HTTP/1.1\r\nHost: t\r\nContent-Length: \(total + 26)\r\n\r\n".utf8))
        try? c.send(Array(#"{"op":"set_rate","key":""#.utf8) + [UInt8](repeating: 0x6B, count: 1 << 20))
        try? c.send([UInt8](repeating: 0x6D, count: 9 << 20))
        try? c.send(Array(#"z","rate":1}"#.utf8))
        let reply = String(decoding: (try? c.receiveToEnd()) ?? [], as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 413"), "\(reply.prefix(200))")
        // Hundreds of idle keep-alive connections, an oversized header, a bad method and bad
        // JSON: each is answered or closed, and the API still answers.
        let idle = try (0..<300).map { _ in try BlockingTCPClient(host: "127.0.0.1", port: admin) }
        let huge = try BlockingTCPClient(host: "127.0.0.1", port: admin)
        try? huge.send(Array("GET /stats HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n".utf8))
        let hugeReply = String(decoding: (try? huge.receiveToEnd()) ?? [], as: UTF8.self)
        #expect(hugeReply.isEmpty || hugeReply.hasPrefix("HTTP/1.1 4"), "\(hugeReply.prefix(200))")
        #expect(try http("BREW", port: admin, "/stats").status == 405 || (try http("BREW", port: admin, "/stats").status) == 400)
        #expect(try http("POST", port: admin, "/pipelines/test/stages/rl/control", body: "{oops").status == 400)
        #expect(try http("GET", port: admin, "/healthz").status == 200)
        withExtendedLifetime(idle) {}
        await echo.stop()
    }

    @Test func runningOutOfDescriptorsPausesAcceptingAndServesAgainOnceTheyFree() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])])
        // The host under a descriptor limit of 64: its own files take about 30, each relayed
        // connection two more.
        let binary = TestEnvironment.binPath("sssonector")
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", "--threads", "1", file], pipelines: 2,
                                   executable: "/bin/sh", prefix: ["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", binary])
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        var clients: [BlockingTCPClient] = []
        for _ in 0..<40 { if let c = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 2) { clients.append(c) } }
        // While the table is full even the admin API cannot accept: the log says what happens.
        #expect(eventually(20) { host.stderr.contains("cannot accept connections; pausing accepts") })
        clients.forEach { $0.reset() }
        clients = []
        #expect(eventually(20) { echoes(port, [1, 2, 3]) })
        let errors = try connections(admin)["accept_errors"]
        guard case .number(let count)? = errors else { Issue.record("no accept_errors in /stats"); return }
        #expect(count > 0)
        await echo.stop()
    }

    @Test func aStageThatCrashesIsNamedWithItsHook() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let host = try HostProcess(["run", try misbehaving("crash_open", upstreams: [("e", echo.ports[0])])])
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        _ = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 5).receiveToEnd()
        host.process.waitUntilExit()
        // Killed by the signal (or, under a sanitizer, exited by its runtime's report).
        #expect(host.process.terminatedBySignal || host.process.terminationStatus != 0)
        #expect(eventually { host.stderr.contains(#"while stage "bad" ran its on_open hook"#) }, "\(host.stderr.suffix(2000))")
        await echo.stop()
    }

    @Test func aCreateThatFailsWithoutTextIsNamed() throws {
        let r = try HostProcess.runToEnd(["validate", try misbehaving("silent_create")])
        #expect(r.status == 2)
        #expect(r.stderr.contains("stages[0].config: create failed with status -5"), "\(r.stderr)")
    }

    @Test func tenReloadsUnderLoadLoseNothingAndAnInvalidOneKeepsTheOldConfiguration() async throws {
        let echo = try await EchoUpstreams(count: 2)
        let stages = #"[{"name": "stats", "plugin": "tracker"}, {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s"}}]"#
        let file = pipelineFile(upstreams: [("a", echo.ports[0]), ("b", echo.ports[1])], stages: stages)
        let (host, port, admin) = try startHost(file)
        defer { host.stop() }
        let failures = Count(), exchanges = Count()
        let running = Count()
        let group = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: group) {
                var k = 0
                while running.value == 0 {
                    // Long-lived and new connections both: every fourth exchange reconnects.
                    guard let c = try? BlockingTCPClient(host: "127.0.0.1", port: port) else { failures.add(); continue }
                    for _ in 0..<4 {
                        let data = pattern(1000 + k % 5000, seed: UInt8(worker))
                        k += 1
                        if (try? c.send(data)) == nil || (try? c.receive(exactly: data.count)) != data { failures.add(); break }
                        exchanges.add()
                    }
                    c.shutdownWrite()
                    if (try? c.receiveToEnd()) != [] { failures.add() }
                }
            }
        }
        for k in 0..<10 {
            #expect(try httpJSON("POST", port: admin, "/reload").status == 200, "reload \(k)")
        }
        let good = try String(contentsOfFile: file, encoding: .utf8)
        try "{ not json".write(toFile: file, atomically: true, encoding: .utf8)
        let refused = try httpJSON("POST", port: admin, "/reload")
        #expect(refused.status == 400)
        try good.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(eventually { exchanges.value > 200 })
        running.add()
        group.wait()
        #expect(failures.value == 0)
        #expect(echoes(port, [1, 2, 3]))
        await echo.stop()
    }
}
