import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// `sssonector-bench` counts each failed connection once: against a host that rejects every
/// connection, its error count can never exceed the rejections the host counted (it reported
/// 341 errors for 184 rejections when a reset was counted again as "closed_by_peer").
@Suite struct BenchCountsTests {
    @Test func aRejectedConnectionIsOneError() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])],
                                stages: #"[{"name": "gate", "plugin": "scriptstage", "config": {"reject": "rate_limited"}}]"#)
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", file], pipelines: 2)
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        let text = try ChildProcess.run(TestEnvironment.binPath("sssonector-bench"),
                                        ["-target", "127.0.0.1:\(port)", "-mode", "connect", "-connections", "4",
                                         "-duration", "1s", "-warmup", "0s", "--json"]).stdout
        let result = try JSONValue.parse(text)
        guard case .number(let errors)? = result["errors"] else { Issue.record("no errors in \(text)"); return }
        #expect(errors > 0)
        // Every attempt the bench made reached the host and was rejected there once.
        var rejected = 0.0
        #expect(eventually {
            let stats = try? httpJSON("GET", port: admin, "/stats").json
            if case .number(let n)? = stats?["pipelines"]?["test"]?["connections"]?["rejected"]?["rate_limited"] { rejected = n }
            return rejected >= errors
        }, "bench counted \(errors) errors for \(rejected) rejections: \(text)")
        await echo.stop()
    }
}
