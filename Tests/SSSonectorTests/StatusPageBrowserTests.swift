import ConfigValues
import Foundation
import Testing

/// The admin port's status page (docs/operations.md, "Status page") in a real browser: Debian's
/// headless Chromium opens it against a real host carrying traffic, reads the figures it drew
/// and compares them with `/stats`, drains an upstream from it, and signs in with a token.
@Suite struct StatusPageBrowserTests {
    static let stages = """
    [{"name": "stats", "plugin": "tracker"},
     {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1000, "default_burst": 1000}},
     {"name": "breaker", "plugin": "breaker"},
     {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s"}}]
    """

    /// Every figure the page drew from `/stats`: where it came from (a JSON array of keys; an
    /// upstream by its name), its raw value, and its text on screen.
    static let drawnFigures = """
    [...document.querySelectorAll("[data-stat][data-value]")].map((e) => [e.dataset.stat, e.dataset.value, e.textContent])
    """

    /// The value at `path` in `/stats`: object keys; array elements by their "name" (upstreams),
    /// else by their index (a stage's lists).
    func value(at path: [String], in document: JSONValue) -> JSONValue? {
        var current: JSONValue? = document
        for key in path {
            switch current {
            case .array(let elements)?:
                if let named = elements.first(where: { $0["name"] == .string(key) }) {
                    current = named
                } else {
                    current = Int(key).flatMap { elements.indices.contains($0) ? elements[$0] : nil }
                }
            default: current = current?[key]
            }
        }
        return current
    }

    func upstreamTotal(_ stats: JSONValue, _ name: String) -> Double? {
        guard case .number(let total)? = value(at: ["pipelines", "test", "upstreams", name, "total"], in: stats) else { return nil }
        return total
    }

    @Test func thePageShowsWhatStatsSaysAndItsDrainButtonStopsNewConnectionsToThatUpstream() async throws {
        let echoes = try await EchoUpstreams(count: 2)
        // With a warm pool, so the page has pool figures to draw.
        let file = pipelineFile(upstreams: [("u0", echoes.ports[0]), ("u1", echoes.ports[1])], stages: Self.stages,
                                connection: #"{"pool": {"enabled": true, "min_idle": 1}}"#)
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", file], pipelines: 2)
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        let browser = try HeadlessBrowser()
        defer { browser.close() }

        #expect((0..<20).allSatisfy { _ in echoExchange(port, size: 1000) })
        #expect(eventually { (try? httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["connections"]?["active"]) == 0 })

        // The traffic has ended, so the page's figures and /stats must agree exactly.
        try browser.open("http://127.0.0.1:\(admin)/")
        #expect(try browser.waitFor("Number(document.body.dataset.refreshes || 0) >= 2"))
        let stats = try httpJSON("GET", port: admin, "/stats").json
        guard case .array(let drawn) = try browser.json(Self.drawnFigures) else { Issue.record("no figures"); return }
        var compared = Set<String>()
        for case .array(let entry) in drawn {
            guard entry.count == 3, case .string(let pathText) = entry[0], case .string(let valueText) = entry[1],
                  case .string(let text) = entry[2], case .array(let keys) = try JSONValue.parse(pathText) else {
                Issue.record("malformed figure \(entry)")
                continue
            }
            let path = keys.compactMap { key -> String? in if case .string(let k) = key { k } else { nil } }
            let drawnValue = try JSONValue.parse(valueText)
            if path.contains(where: { $0.hasSuffix("_per_second") }) {
                // A rate over a sliding window moves with the clock between the page's refresh and
                // this /stats, so it is bounded, not matched: 20 connections, all inside any window.
                guard case .number(let rate) = drawnValue, case .number? = value(at: path, in: stats) else {
                    Issue.record("\(path) on the page: \(valueText), in /stats: \(String(describing: value(at: path, in: stats)))")
                    continue
                }
                #expect((0...20).contains(rate), "\(path) on the page: \(valueText)")
            } else if path.suffix(2) == ["pool", "idle"] {
                // The pool refills and retires idle connections on its own, traffic or not.
                guard case .number(let idle) = drawnValue, case .number? = value(at: path, in: stats) else {
                    Issue.record("\(path) on the page: \(valueText), in /stats: \(String(describing: value(at: path, in: stats)))")
                    continue
                }
                #expect(idle >= 0 && idle == idle.rounded(), "\(path) on the page: \(valueText)")
            } else {
                #expect(value(at: path, in: stats) == drawnValue, "\(path) on the page: \(valueText)")
            }
            compared.insert(path.joined(separator: "/"))
            // Counts read as plain integers (bytes and times are shown in units).
            let dotted = path.joined(separator: ".")
            if case .number(let n) = drawnValue, n == n.rounded(), !dotted.contains("bytes"), !dotted.contains("seconds") {
                #expect(text.replacingOccurrences(of: ",", with: "") == String(Int(n)), "\(path) reads \(text)")
            }
        }
        for figure in ["connections/total", "connections/bytes_up", "connections/bytes_down", "upstreams/u0/total",
                       "upstreams/u1/active", "upstreams/u1/weight", "upstreams/u0/pool/hits", "upstreams/u1/pool/idle", "stages/limit/allowed", "stages/stats/accepted",
                       "stages/breaker/upstreams/u0/state", "listener/state"] {
            #expect(compared.contains("pipelines/test/" + figure), "the page shows no \(figure)")
        }
        #expect(value(at: ["pipelines", "test", "connections", "total"], in: stats) == 20)

        // Drain u0 from the page: the confirmation shows the request, then the host sends u1 every new connection.
        #expect(try browser.evaluate(#"document.querySelector('button[data-action="drain"][data-upstream="u0"]').click() ?? true"#) == "true")
        #expect(try browser.waitFor(#"document.getElementById("confirm").open"#))
        #expect(try browser.evaluate(#"document.getElementById("confirm-request").textContent"#) == #""DELETE /pipelines/test/upstreams/u0""#)
        _ = try browser.evaluate(#"document.getElementById("confirm-ok").click() ?? true"#)
        #expect(eventually {
            let upstream = (try? httpJSON("GET", port: admin, "/stats")).flatMap { value(at: ["pipelines", "test", "upstreams", "u0"], in: $0.json) }
            return upstream == nil || upstream?["draining"] == true
        })
        #expect(try browser.waitFor(#"document.querySelector('button[data-action="restore"][data-upstream="u0"]') !== null"#))
        let before = try httpJSON("GET", port: admin, "/stats").json
        #expect((0..<10).allSatisfy { _ in echoExchange(port) })
        #expect(eventually { (try? httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["connections"]?["active"]) == 0 })
        let after = try httpJSON("GET", port: admin, "/stats").json
        #expect(upstreamTotal(after, "u1") == upstreamTotal(before, "u1").map { $0 + 10 })
        // u0 may have left the set meanwhile (a drained upstream does once it has no connection);
        // if it is still there, it took none.
        #expect(upstreamTotal(after, "u0").map { $0 == upstreamTotal(before, "u0") } ?? true)

        // Restore it from the page: it takes new connections again.
        _ = try browser.evaluate(#"document.querySelector('button[data-action="restore"][data-upstream="u0"]').click() ?? true"#)
        #expect(try browser.waitFor(#"document.getElementById("confirm").open"#))
        _ = try browser.evaluate(#"document.getElementById("confirm-ok").click() ?? true"#)
        #expect(eventually {
            (try? httpJSON("GET", port: admin, "/stats")).flatMap { value(at: ["pipelines", "test", "upstreams", "u0", "draining"], in: $0.json) } == false
        })
        #expect(try browser.waitFor(#"document.querySelector('button[data-action="drain"][data-upstream="u0"]') !== null"#))
        try browser.screenshot(to: TestEnvironment.binPath("status-page.png"))

        // The host stops: the page says so instead of showing old figures as live.
        host.stop()
        #expect(try browser.waitFor(#"document.getElementById("status").classList.contains("down")"#))
        await echoes.stop()
    }

    /// Clicks the page's `selector` button, fills the confirmation's `fields`, checks the request
    /// it shows is `request` (method, path, JSON body), and confirms it (or cancels it).
    func act(in browser: HeadlessBrowser, clicking selector: String, fields: [(String, String)] = [],
             showing request: String, confirm: Bool = true) throws {
        #expect(try browser.waitFor("document.querySelector('\(selector)') !== null"), "no \(selector) on the page")
        _ = try browser.evaluate("document.querySelector('\(selector)').click() ?? true")
        #expect(try browser.waitFor(#"document.getElementById("confirm").open"#))
        for (name, value) in fields {
            let input = #"document.querySelector('#confirm-fields input[name="\#(name)"]')"#
            _ = try browser.evaluate(#"(\#(input).value = "\#(value)", \#(input).dispatchEvent(new Event("input")), true)"#)
        }
        #expect(try browser.json(#"document.getElementById("confirm-request").textContent"#) == .string(request))
        _ = try browser.evaluate(#"document.getElementById("confirm-\#(confirm ? "ok" : "cancel")").click() ?? true"#)
        #expect(try browser.waitFor(#"!document.getElementById("confirm").open"#))
    }

    @Test func itsWeightRateAndBreakerButtonsChangeTheHostAndACancelledOneChangesNothing() async throws {
        let echoes = try await EchoUpstreams(count: 2)
        let refusing = try RefusingPort()
        defer { refusing.stop() }
        let file = pipelineFile(upstreams: [("u0", echoes.ports[0]), ("dead", refusing.port), ("u1", echoes.ports[1])], stages: """
            [{"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 1000, "default_burst": 1000}},
             {"name": "breaker", "plugin": "breaker", "config": {"max_failures": 1, "reset_timeout": "1h"}},
             {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s", "max_retries": 2}}]
            """)
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", file], pipelines: 2)
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        func figure(_ path: String...) -> JSONValue? {
            (try? httpJSON("GET", port: admin, "/stats")).flatMap { value(at: ["pipelines", "test"] + path, in: $0.json) }
        }

        // Round robin reaches "dead" within three connections: its refused connect opens its
        // circuit (one failure is enough here), and that client is retried on another upstream.
        #expect((0..<3).allSatisfy { _ in echoExchange(port) })
        #expect(eventually { figure("stages", "breaker", "upstreams", "dead", "state") == "open" })

        let browser = try HeadlessBrowser()
        defer { browser.close() }
        try browser.open("http://127.0.0.1:\(admin)/")

        // A cancelled dialog sends nothing: u0 keeps its weight (checked below, after a later
        // action from the same page has landed).
        try act(in: browser, clicking: #"button[data-action="weight"][data-upstream="u0"]"#, fields: [("weight", "9")],
                showing: #"PATCH /pipelines/test/upstreams/u0 {"weight":9}"#, confirm: false)

        try act(in: browser, clicking: #"button[data-action="reset-breaker"][data-upstream="dead"]"#,
                showing: #"POST /pipelines/test/stages/breaker/control {"op":"reset","upstream":"dead"}"#)
        #expect(eventually { figure("stages", "breaker", "upstreams", "dead", "state") == "closed" })
        #expect(try browser.waitFor(#"document.querySelector('button[data-action="reset-breaker"]') === null"#))

        try act(in: browser, clicking: #"button[data-action="weight"][data-upstream="u1"]"#, fields: [("weight", "7")],
                showing: #"PATCH /pipelines/test/upstreams/u1 {"weight":7}"#)
        #expect(eventually { figure("upstreams", "u1", "weight") == 7 })
        #expect(figure("upstreams", "u0", "weight") == 1)

        try act(in: browser, clicking: #"button[data-action="set-rate"][data-stage="limit"]"#, fields: [("rate", "50"), ("burst", "60")],
                showing: #"POST /pipelines/test/stages/limit/control {"op":"set_rate","rate":50,"burst":60}"#)
        #expect(eventually { figure("stages", "limit", "default_rate") == 50 && figure("stages", "limit", "default_burst") == 60 })
        // The page shows what it set.
        #expect(try browser.waitFor(#"document.querySelector('[data-stat=\'["pipelines","test","stages","limit","default_rate"]\']')?.dataset.value === "50""#))
        await echoes.stop()
    }

    @Test func aRelaysPageShowsItsServicesAndConnectorsAndAConnectorsPageItsTunnel() async throws {
        let echoes = try await EchoUpstreams(count: 1)
        let tunnel = try ReverseTunnelHosts()
        let connector = try tunnel.startConnector(upstreamPort: echoes.ports[0])
        defer { connector.stop(); tunnel.stop() }
        #expect(eventually { tunnel.serviceFigure("connections") == 2 })
        #expect(echoExchange(tunnel.publicPort))
        let browser = try HeadlessBrowser()
        defer { browser.close() }

        try browser.open("http://127.0.0.1:\(tunnel.relayAdmin)/")
        let service = #"document.querySelector('[data-service="\#(ReverseTunnelHosts.service)"]')"#
        #expect(try browser.waitFor("\(service) && \(service).querySelectorAll('tbody tr').length === 2"))
        #expect(try browser.evaluate("\(service).textContent.includes('\(ReverseTunnelHosts.identity)')") == "true")
        let streams = #"document.querySelector('[data-stat=\'["relay","services","echo","streams_total"]\']')"#
        #expect(try browser.waitFor("\(streams) && \(streams).dataset.value === '\(tunnel.serviceFigure("streams_total"))'"))

        try browser.open("http://127.0.0.1:\(try #require(connector.adminPort))/")
        #expect(try browser.waitFor(#"document.querySelector('[data-stat=\'["pipelines","connector","listener","state"]\']')?.dataset.value === '"running"'"#))
        #expect(try browser.waitFor(#"document.querySelectorAll('[data-stat^=\'["pipelines","connector","reverse"\']').length > 0"#))
        await echoes.stop()
    }

    @Test func withATokenThePageAsksForItAndShowsNoDataUntilItIsGiven() async throws {
        let echoes = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("only", echoes.ports[0])], stages: Self.stages)
        let token = "page-token-\(UInt32.random(in: 1...UInt32.max))"
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", "--admin-token", token, file], pipelines: 2)
        defer { host.stop() }
        let admin = try #require(host.adminPort)

        // The page itself is served without the token, and carries no data and no secret.
        let page = try http("GET", port: admin, "/")
        #expect(page.status == 200)
        #expect(!page.body.contains(token) && !page.body.contains("127.0.0.1:\(echoes.ports[0])"))
        #expect(try http("GET", port: admin, "/stats").status == 401)

        let browser = try HeadlessBrowser()
        defer { browser.close() }
        try browser.open("http://127.0.0.1:\(admin)/")
        #expect(try browser.waitFor(#"!document.getElementById("login").hidden"#))
        #expect(try browser.evaluate(#"document.querySelectorAll("[data-stat]").length"#) == "0")

        // A wrong token is refused and still shows nothing.
        _ = try browser.evaluate(#"(document.getElementById("token").value = "wrong", document.getElementById("login-form").requestSubmit(), true)"#)
        #expect(try browser.waitFor(#"!document.getElementById("login").hidden && !document.getElementById("login-error").hidden"#))
        #expect(try browser.evaluate(#"document.querySelectorAll("[data-stat]").length"#) == "0")

        _ = try browser.evaluate(#"(document.getElementById("token").value = "\#(token)", document.getElementById("login-form").requestSubmit(), true)"#)
        #expect(try browser.waitFor(#"document.getElementById("login").hidden && document.querySelectorAll("[data-stat]").length > 0"#))
        #expect(try browser.evaluate(#"document.querySelector("[data-pipeline]").dataset.pipeline"#) == #""test""#)
        await echoes.stop()
    }
}
