import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The admin API of a running host process with the real stock stages.
@Suite struct AdminEndToEndTests {
    func withAdmin(
        stages: String, upstreams count: Int = 1, extra: [String] = [],
        _ body: (HostProcess, Int, Int, EchoUpstreams) async throws -> Void
    ) async throws {
        let echoes = try await EchoUpstreams(count: count)
        let file = pipelineFile(upstreams: echoes.ports.enumerated().map { ("u\($0.offset)", $0.element) }, stages: stages)
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", file] + extra, pipelines: 2)
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        try await body(host, port, admin, echoes)
        await echoes.stop()
    }

    func exchange(_ port: Int, size: Int = 100) -> Bool { echoExchange(port, size: size) }

    static let stock = """
    [{"name": "stats", "plugin": "tracker"},
     {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 0.001, "default_burst": 3}},
     {"name": "breaker", "plugin": "breaker"},
     {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s"}}]
    """

    @Test func statsAndMetricsMatchTheTrafficAndControlChangesWhatRatelimitAdmits() async throws {
        try await withAdmin(stages: Self.stock) { _, port, admin, _ in
            let health = try http("GET", port: admin, "/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
            let admitted = (0..<5).filter { _ in exchange(port) }.count
            #expect(admitted == 3)
            #expect(eventually { (try? httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["connections"]?["active"]) == 0 })
            let stats = try httpJSON("GET", port: admin, "/stats")
            #expect(stats.status == 200)
            let pipeline = stats.json["pipelines"]?["test"]
            #expect(pipeline?["connections"]?["total"] == 5)
            #expect(pipeline?["connections"]?["rejected"] == ["rate_limited": 2])
            #expect(pipeline?["connections"]?["bytes_up"] == 300)
            #expect(pipeline?["stages"]?["limit"]?["allowed"] == 3)
            #expect(pipeline?["stages"]?["stats"]?["accepted"] == 5)
            #expect(pipeline?["stages"]?["lb"]?["strategy"] == "round_robin")
            #expect(pipeline?["upstreams"]?.typeName == "an array")

            let metrics = try PrometheusText(try http("GET", port: admin, "/metrics").body)
            #expect(metrics.value("sssonector_connections_total", ["pipeline": "test"]) == 5)
            #expect(metrics.value("sssonector_connections_rejected_total", ["pipeline": "test", "reason": "rate_limited"]) == 2)
            #expect(metrics.value("sssonector_ratelimit_rejected_total", ["pipeline": "test", "stage": "limit"]) == 2)
            #expect(metrics.value("sssonector_tracker_connections_total", ["stage": "stats"]) == 5)
            #expect(metrics.types["sssonector_tracker_connection_duration_seconds"] == "histogram")

            // Raise the rate: the bucket keeps its (zero) tokens but refills quickly now.
            let answer = try httpJSON("POST", port: admin, "/pipelines/test/stages/limit/control",
                                      body: #"{"op": "set_rate", "rate": 1000, "burst": 1000}"#)
            #expect(answer.status == 200 && answer.json["rate"] == 1000)
            #expect(eventually { exchange(port) })
            #expect((0..<5).allSatisfy { _ in exchange(port) })
        }
    }

    @Test func anAddedUpstreamTakesConnectionsAndADrainedOneTakesNoNewOnes() async throws {
        let stages = #"[{"name": "lb", "plugin": "balancer", "config": {"health_check": "0s"}}]"#
        try await withAdmin(stages: stages) { _, port, admin, _ in
            let extra = try await EchoUpstreams(count: 1)
            let add = try httpJSON("POST", port: admin, "/pipelines/test/upstreams",
                                   body: #"{"name": "new", "address": "127.0.0.1:\#(extra.ports[0])", "weight": 1}"#)
            #expect(add.status == 201)
            #expect(try httpJSON("POST", port: admin, "/pipelines/test/upstreams",
                                 body: #"{"name": "new", "address": "127.0.0.1:1"}"#).status == 409)
            for _ in 0..<4 { #expect(exchange(port)) }
            var stats = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["stages"]?["lb"]?["upstreams"]
            #expect(stats?["new"]?["total"] == 2)
            // Keep a connection open on u0, drain u0: the open one keeps flowing, new ones avoid it.
            var open: BlockingTCPClient?
            for _ in 0..<2 {
                let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
                try c.send([1]); _ = try c.receive(exactly: 1)
                let lb = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["upstreams"]
                if case .array(let list)? = lb, list.first?["active"] == 1 { open = c; break }
            }
            let held = try #require(open)
            #expect(try httpJSON("DELETE", port: admin, "/pipelines/test/upstreams/u0").status == 202)
            for _ in 0..<4 { #expect(exchange(port)) }
            stats = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["stages"]?["lb"]?["upstreams"]
            let before = stats?["u0"]?["total"]
            for _ in 0..<4 { #expect(exchange(port)) }
            stats = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["stages"]?["lb"]?["upstreams"]
            #expect(stats?["u0"]?["total"] == before)
            try held.send([7, 8, 9])
            #expect(try held.receive(exactly: 3) == [7, 8, 9])
            #expect(try httpJSON("PATCH", port: admin, "/pipelines/test/upstreams/new", body: #"{"weight": 5}"#).status == 200)
            // Restored while still draining (the held connection keeps it in the set): it takes new connections again.
            let restored = try httpJSON("PATCH", port: admin, "/pipelines/test/upstreams/u0", body: #"{"draining": false}"#)
            #expect(restored.status == 200 && restored.json["draining"] == false)
            for _ in 0..<12 { #expect(exchange(port)) }
            stats = try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["stages"]?["lb"]?["upstreams"]
            #expect((stats?["u0"]?["total"]?.intValue ?? 0) > (before?.intValue ?? 0))
            await extra.stop()
        }
    }

    @Test func errorsHaveTheirStatuses() async throws {
        try await withAdmin(stages: Self.stock) { _, _, admin, _ in
            let cases: [(String, String, String, Int)] = [
                ("GET", "/nowhere", "", 404), ("GET", "/pipelines/zz/upstreams", "", 404),
                ("POST", "/pipelines/test/stages/zz/control", "{}", 404), ("PUT", "/stats", "", 405),
                ("GET", "/pipelines/test/upstreams", "", 405),
                ("POST", "/pipelines/test/stages/limit/control", "{not json", 400),
                ("POST", "/pipelines/test/stages/limit/control", #"{"op": "fly"}"#, 400),
                ("POST", "/pipelines/test/upstreams", #"{"name": "x"}"#, 400),
                ("PATCH", "/pipelines/test/upstreams/u0", "{}", 400),
                ("PATCH", "/pipelines/test/upstreams/u0", #"{"draining": "no"}"#, 400),
                ("PATCH", "/pipelines/test/upstreams/zz", #"{"draining": false}"#, 404),
                ("POST", "/", "", 405),
            ]
            for (method, path, body, status) in cases {
                let answer = try http(method, port: admin, path, body: body)
                #expect(answer.status == status, "\(method) \(path)")
                #expect((try? JSONValue.parse(answer.body))?["error"] != nil, "\(method) \(path): \(answer.body)")
            }
        }
        let tokenRun = try HostProcess.runToEnd(["run", "--admin", "0.0.0.0:0", pipelineFile(upstreams: [("a", 9)])])
        #expect(tokenRun.status == 2)
        #expect(tokenRun.stderr.contains("requires --admin-token"))
        try await withAdmin(stages: "[]", extra: ["--admin-token", "s3cret"]) { _, _, admin, _ in
            let none = try http("GET", port: admin, "/stats")
            let wrong = try http("GET", port: admin, "/stats", token: "wrong")
            let right = try http("GET", port: admin, "/stats", token: "s3cret")
            #expect(none.status == 401 && wrong.status == 401 && right.status == 200)
            // The status page holds no data: it is served without the token (it asks for one).
            let page = try http("GET", port: admin, "/")
            #expect(page.status == 200 && page.body.hasPrefix("<!doctype html>"))
        }
    }
}
