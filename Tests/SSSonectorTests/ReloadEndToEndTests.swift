import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// SIGHUP and `POST /reload`: new connections get the new configuration, open ones finish on
/// theirs, an invalid file is refused whole.
@Suite struct ReloadEndToEndTests {
    func exchange(_ port: Int) -> Bool { echoExchange(port, size: 3) }

    func limited(burst: Int) -> String {
        #"[{"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 0.001, "default_burst": \#(burst)}}]"#
    }

    @Test func sighupAppliesANewConfigurationAndKeepsOpenConnections() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])], stages: limited(burst: 2))
        let host = try HostProcess(["run", "--admin", "127.0.0.1:0", file], pipelines: 2)
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let admin = try #require(host.adminPort)
        let held = try BlockingTCPClient(host: "127.0.0.1", port: port)
        try held.send([9]); #expect(try held.receive(exactly: 1) == [9])
        #expect(exchange(port))
        #expect(!exchange(port))  // burst of 2 spent

        // An invalid file is refused; the running configuration stays.
        try "{ not json".write(toFile: file, atomically: true, encoding: .utf8)
        kill(host.process.processIdentifier, SIGHUP)
        #expect(eventually { host.stderr.contains("malformed JSON") })
        #expect(!exchange(port))

        let text = try String(contentsOfFile: pipelineFile(upstreams: [("e", echo.ports[0])], stages: limited(burst: 50)), encoding: .utf8)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        kill(host.process.processIdentifier, SIGHUP)
        #expect(eventually { exchange(port) })  // a fresh limiter with a burst of 50
        try held.send([7, 7]); #expect(try held.receive(exactly: 2) == [7, 7])  // the old connection still flows

        let answer = try httpJSON("POST", port: admin, "/reload")
        #expect(answer.status == 200 && answer.json["reloaded"] == true)
        #expect(try httpJSON("GET", port: admin, "/stats").json["pipelines"]?["test"]?["stages"]?["limit"]?["default_burst"] == 50)
        held.shutdownWrite()
        #expect(try held.receiveToEnd() == [])
        await echo.stop()
    }
}
