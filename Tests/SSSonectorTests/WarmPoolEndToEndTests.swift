import ConfigValues
import Foundation
import NIOSSL
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The warm upstream pool through the real host (one event loop, so counts are exact): hits
/// carry bytes intact, an upstream dropping idle connections costs no client, greetings reach
/// the client only when asked, TLS handshakes happen ahead, and nothing stays open after a
/// removal or a reload.
@Suite struct WarmPoolEndToEndTests {
    /// Runs a host (`--threads 1`, admin on) for `upstream` with `pool` as `connection.pool`.
    func withHost(_ upstream: PoolUpstream, pool: String, stages: String = "[]", upstreamExtra: String = "",
                  _ body: (HostProcess, _ port: Int, _ admin: Int, _ file: String) throws -> Void) throws {
        let text = """
        {"version": 1, "name": "pool", "listen": {"address": "127.0.0.1:0"},
         "upstreams": [{"name": "a", "address": "127.0.0.1:\(upstream.port)"\(upstreamExtra)}],
         "connection": {"retry_attempts": 0, "pool": \(pool)}, "stages": \(stages)}
        """
        let file = TestEnvironment.writeFile("pool.json", text)
        let host = try HostProcess(["run", "--threads", "1", "--admin", "127.0.0.1:0", file])
        defer {
            host.stop()
            upstream.stop()
        }
        try body(host, try #require(host.port(of: "pool")), try #require(host.adminPort), file)
    }

    func upstreamStats(_ admin: Int) -> JSONValue? {
        guard case .array(let list)? = (try? httpJSON("GET", port: admin, "/stats"))?.json["pipelines"]?["pool"]?["upstreams"] else { return nil }
        return list.first
    }

    func pool(_ admin: Int, _ key: String) -> Double? {
        if case .number(let n)? = upstreamStats(admin)?["pool"]?[key] { return n }
        return nil
    }

    func evictions(_ admin: Int, _ reason: String) -> Double? {
        if case .number(let n)? = upstreamStats(admin)?["pool"]?["evictions"]?[reason] { return n }
        return nil
    }

    /// Sockets the host process holds now.
    func sockets(of host: HostProcess) -> Int {
        let dir = "/proc/\(host.process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return entries.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\($0)")) ?? "").hasPrefix("socket:") }.count
    }

    func exchange(_ port: Int, _ bytes: [UInt8]) -> Bool {
        guard let c = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 10),
              (try? c.send(bytes)) != nil, (try? c.receive(exactly: bytes.count)) == bytes else { return false }
        c.shutdownWrite()
        return (try? c.receiveToEnd()) == []
    }

    @Test func aHitCarriesTenMegabytesIntactAndIsReportedAsPooled() throws {
        let upstream = try PoolUpstream()
        try withHost(upstream, pool: #"{"enabled": true, "min_idle": 1}"#,
                     stages: #"[{"name": "stats", "plugin": "tracker"}]"#) { _, port, admin, _ in
            // Opened at start, before any client.
            #expect(eventually { pool(admin, "idle") == 1 && upstream.counts.accepted.load(ordering: .relaxed) == 1 })
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
            let data = pattern(10 * 1024 * 1024)
            let sender = Thread { try? client.send(data); client.shutdownWrite() }
            sender.start()
            let echoed = try client.receiveToEnd()
            #expect(echoed == data)
            #expect(pool(admin, "hits") == 1 && pool(admin, "misses") == 0)
            let stats = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["pool"]
            #expect(stats?["stages"]?["stats"]?["pooled_connects"] == 1)  // the ABI's pooled flag reached the tracker
            #expect(stats?["connections"]?["bytes_up"] == .int(data.count))
            // Refilled in the background: a second warm connection, never returned.
            #expect(eventually { pool(admin, "idle") == 1 && upstream.counts.accepted.load(ordering: .relaxed) == 2 })
            let metrics = try PrometheusText(try http("GET", port: admin, "/metrics").body)
            #expect(metrics.value("sssonector_pool_checkouts_total", ["pipeline": "pool", "upstream": "a", "result": "hit"]) == 1)
            #expect(metrics.value("sssonector_pool_idle", ["pipeline": "pool", "upstream": "a"]) == 1)
        }
    }

    @Test func anUpstreamThatClosesIdleConnectionsAfter100msCostsNoClient() throws {
        let upstream = try PoolUpstream(idleTimeout: .milliseconds(100))
        try withHost(upstream, pool: #"{"enabled": true, "min_idle": 2}"#) { _, port, admin, _ in
            // The pool drops what the upstream closes, and learns to retire its idle
            // connections before the upstream does: then it hands out none the upstream is closing.
            #expect(eventually { (evictions(admin, "peer_closed") ?? 0) >= 2 && (evictions(admin, "idle_timeout") ?? 0) >= 2 })
            var failures = 0
            for i in 0..<40 {
                if !exchange(port, pattern(2048, seed: UInt8(i))) { failures += 1 }
                if i % 8 == 7 { usleep(120_000) }  // let sweeps happen between some clients
            }
            #expect(failures == 0)
            #expect((pool(admin, "hits") ?? 0) >= 1)
            #expect(pool(admin, "refill_failures") == 0)
        }
    }

    @Test func aServerFirstGreetingReachesTheClientOnlyWithTheOption() throws {
        let greeting = "220 mail.example ESMTP ready\r\n"
        let greeter = try PoolUpstream(greeting: greeting)
        try withHost(greeter, pool: #"{"enabled": true, "min_idle": 1, "server_speaks_first": true}"#) { _, port, admin, _ in
            #expect(eventually { pool(admin, "idle") == 1 })
            let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
            #expect(try c.receive(exactly: greeting.utf8.count) == Array(greeting.utf8))
            try c.send(Array("EHLO x\r\n".utf8))
            #expect(try c.receive(exactly: 8) == Array("EHLO x\r\n".utf8))
            c.shutdownWrite()
            #expect(try c.receiveToEnd() == [])
            #expect(pool(admin, "hits") == 1 && pool(admin, "greeting_bytes") == Double(greeting.utf8.count))
        }
        // Without it, an idle connection's bytes are never handed to a client: the client's
        // own (cold) connection brings it exactly one greeting.
        let plain = try PoolUpstream(greeting: greeting)
        try withHost(plain, pool: #"{"enabled": true, "min_idle": 1}"#) { _, port, admin, _ in
            #expect(eventually { (evictions(admin, "unexpected_data") ?? 0) >= 1 })
            let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
            #expect(try c.receive(exactly: greeting.utf8.count) == Array(greeting.utf8))
            try c.send(Array("QUIT\r\n".utf8))
            #expect(try c.receive(exactly: 6) == Array("QUIT\r\n".utf8))
            c.shutdownWrite()
            #expect(try c.receiveToEnd() == [])
            #expect(pool(admin, "hits") == 0)
        }
    }

    @Test func tlsHandshakesAreDoneAheadAndEachHitCostsTheClientNone() throws {
        let dir = TestEnvironment.temporaryDirectory() + "/certs"
        let made = try HostProcess.runToEnd(["certs", "init", "--out", dir, "--name", "localhost"])
        #expect(made.status == 0, "\(made.stderr)")
        let server = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile("\(dir)/server.pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: "\(dir)/server.key", format: .pem))))
        let upstream = try PoolUpstream(tls: server)
        let tls = #", "tls": {"ca": "\#(dir)/ca.pem", "server_name": "localhost"}"#
        try withHost(upstream, pool: #"{"enabled": true, "min_idle": 2}"#, upstreamExtra: tls) { _, port, admin, _ in
            // Two handshakes completed at the upstream before any client; both idle and verified.
            #expect(eventually { upstream.counts.handshakes.load(ordering: .relaxed) == 2 && pool(admin, "idle") == 2 })
            #expect(exchange(port, pattern(4096)))
            #expect(pool(admin, "hits") == 1)
            // The client's connection used a handshake done ahead; the refill does the next one.
            #expect(eventually { upstream.counts.handshakes.load(ordering: .relaxed) == 3 && pool(admin, "idle") == 2 })
            #expect(upstream.counts.accepted.load(ordering: .relaxed) == 3)
        }
    }

    @Test func anOpenCircuitStopsRefillsAndClosesTheIdleOnes() throws {
        let upstream = try PoolUpstream()
        let stages = #"[{"name": "breaker", "plugin": "breaker"}]"#
        try withHost(upstream, pool: #"{"enabled": true, "min_idle": 2}"#, stages: stages) { _, _, admin, _ in
            #expect(eventually { pool(admin, "idle") == 2 })
            let trip = try httpJSON("POST", port: admin, "/pipelines/pool/stages/breaker/control", body: #"{"op": "trip", "upstream": "a"}"#)
            #expect(trip.status == 200)
            // The breaker tells the host through the ABI (on_upstream_status): paused.
            #expect(eventually { evictions(admin, "circuit_open") == 2 && upstream.counts.open.load(ordering: .relaxed) == 0 })
            #expect(upstreamStats(admin)?["paused"] == true && upstreamStats(admin)?["healthy"] == true)
            #expect(pool(admin, "idle") == 0)
            _ = try httpJSON("POST", port: admin, "/pipelines/pool/stages/breaker/control", body: #"{"op": "reset", "upstream": "a"}"#)
            #expect(eventually { pool(admin, "idle") == 2 && upstream.counts.open.load(ordering: .relaxed) == 2 })
        }
    }

    @Test func reloadAndRemovalLeaveNoPooledConnectionOpen() throws {
        let upstream = try PoolUpstream()
        try withHost(upstream, pool: #"{"enabled": true, "min_idle": 3}"#) { host, _, admin, _ in
            #expect(eventually { upstream.counts.open.load(ordering: .relaxed) == 3 && pool(admin, "idle") == 3 })
            let before = sockets(of: host)
            // A reload closes the old configuration's pool and opens the new one's.
            let reload = try http("POST", port: admin, "/reload")
            #expect(reload.status == 200)
            #expect(eventually { upstream.counts.accepted.load(ordering: .relaxed) == 6 && upstream.counts.open.load(ordering: .relaxed) == 3 })
            #expect(eventually { sockets(of: host) == before })
            // Removing the upstream closes its idle connections at once.
            let removal = try http("DELETE", port: admin, "/pipelines/pool/upstreams/a")
            #expect(removal.status == 202)
            #expect(eventually { upstream.counts.open.load(ordering: .relaxed) == 0 })
            #expect(eventually { sockets(of: host) == before - 3 })
        }
    }
}
