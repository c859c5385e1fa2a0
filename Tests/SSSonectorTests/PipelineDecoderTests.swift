import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore

/// Strict decoding of pipeline files: every error with its JSON path.
@Suite struct PipelineDecoderTests {
    func errors(_ text: String) -> [String] {
        switch PipelineDecoder.decode(text: text, file: "p.json") {
        case .success: return []
        case .failure(let e): return e.lines
        }
    }

    let valid = """
    {"version": 1, "name": "edge", "listen": {"address": "127.0.0.1:7000"},
     "upstreams": [{"name": "a", "address": "127.0.0.1:8081", "weight": 2}, {"name": "b", "address": "[::1]:8082"}],
     "connection": {"max_connections": 10, "connect_timeout": "250ms", "idle_timeout": "5m"},
     "stages": [{"name": "cap", "plugin": "bytecap", "config": {"max_bytes": "1MiB"}}]}
    """

    @Test func decodesAValidFile() throws {
        let config = try PipelineDecoder.decode(text: valid, file: "/etc/p.json").get()
        #expect(config.name == "edge")
        #expect(config.listen.address == EndpointAddress(host: "127.0.0.1", port: 7000))
        #expect(config.upstreams.map(\.address.description) == ["127.0.0.1:8081", "[::1]:8082"])
        #expect(config.upstreams.map(\.weight) == [2, 1])
        #expect(config.connection.connectTimeout == 250_000_000)
        #expect(config.connection.maxConnections == 10)
        #expect(config.stages[0].configJSON == #"{"max_bytes":"1MiB"}"#)
        #expect(config.stages[0].path == "stages[0]")
        #expect(config.directory == "/etc")
    }

    @Test func everyBadInputNamesItsPath() {
        let cases: [(String, String)] = [
            (valid.replacingOccurrences(of: #""stages""#, with: #""stagez""#), "p.json: stagez: unknown key"),
            (valid.replacingOccurrences(of: #""plugin": "bytecap", "config""#, with: #""plugin": "bytecap", "confg""#),
             "p.json: stages[0].confg: unknown key (expected one of: name, plugin, type, config)"),
            (valid.replacingOccurrences(of: #""max_connections": 10"#, with: #""max_connections": "10""#),
             #"p.json: connection.max_connections: expected a whole number, found "10""#),
            (valid.replacingOccurrences(of: #""250ms""#, with: #""quickly""#),
             #"p.json: connection.connect_timeout: expected a duration with a unit such as "250ms", "30s", "5m", found "quickly""#),
            (valid.replacingOccurrences(of: #""name": "b""#, with: #""name": "a""#),
             #"p.json: upstreams[1].name: duplicate upstream name "a""#),
            (valid.replacingOccurrences(of: "127.0.0.1:8081", with: "127.0.0.1:99999"),
             #"p.json: upstreams[0].address: port must be 1...65535, found "127.0.0.1:99999""#),
            (valid.replacingOccurrences(of: "[::1]:8082", with: "::1:8082"),
             "p.json: upstreams[1].address: write IPv6 addresses in brackets"),
            (valid.replacingOccurrences(of: #""version": 1"#, with: #""version": 2"#),
             "p.json: version: unsupported version 2; this host reads version 1"),
            ("{\"version\": 1,", "p.json: malformed JSON at line 1, column 15"),
        ]
        for (text, expected) in cases {
            let found = errors(text)
            #expect(found.contains { $0.hasPrefix(expected) }, "expected \(expected), got \(found)")
        }
    }

    @Test func reportsEveryErrorNotJustTheFirst() {
        let text = """
        {"version": 1, "name": "x", "listen": {"address": "nowhere"},
         "upstreams": [{"name": "a", "address": "127.0.0.1:1", "wieght": 1}],
         "stages": [{"name": "s", "plugin": ""}], "extra": true}
        """
        let found = errors(text)
        #expect(found.count == 4, "\(found)")
        #expect(found.contains { $0.hasPrefix("p.json: listen.address: expected") })
        #expect(found.contains { $0.hasPrefix("p.json: upstreams[0].wieght: unknown key") })
        #expect(found.contains("p.json: stages[0].plugin: must not be empty"))
        #expect(found.contains { $0.hasPrefix("p.json: extra: unknown key") })
    }

    @Test func shippedPipelinesDecode() throws {
        for name in ["minimal.json", "demo.json", "tunnel-client.json", "tunnel-server.json", "relay.json", "relay-public.json", "connector.json", "shared-limit.json"] {
            let path = "\(TestEnvironment.repositoryRoot)/pipelines/\(name)"
            #expect(throws: Never.self) { try PipelineDecoder.loadFile(path).get() }
        }
    }
}
