import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore

/// `pipelines/pipeline.schema.json` must allow exactly the keys the decoder accepts. The
/// decoder's keys are read from its own "unknown key (expected one of: ...)" errors.
@Suite struct PipelineSchemaTests {
    let schema: JSONValue = {
        let path = "\(TestEnvironment.repositoryRoot)/pipelines/pipeline.schema.json"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "{}"
        return (try? JSONValue.parse(text)) ?? .null
    }()

    func schemaKeys(_ path: [String]) -> Set<String> {
        var node = schema
        for step in path { node = node[step] ?? .null }
        guard case .object(let members)? = node["properties"] else { return [] }
        return Set(members.map(\.0))
    }

    /// Inserts `"zz_unknown": 1` into the object at `section` and returns the keys the
    /// decoder says it expected there.
    func decoderKeys(section: String) -> Set<String> {
        let document = """
        {"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0" LISTEN},
         "upstreams": [{"name": "a", "address": "127.0.0.1:9", "pool": {"max_idle": 4 UPSTREAM_POOL} UPSTREAM}],
         "connection": {"idle_timeout": "1s", "pool": {"enabled": true POOL} CONNECTION},
         "stages": [{"name": "s", "plugin": "p" STAGE}], "plugin_path": [] ROOT}
        """
        var text = document
        for marker in ["LISTEN", "UPSTREAM_POOL", "UPSTREAM", "POOL", "CONNECTION", "STAGE", "ROOT"] {
            text = text.replacingOccurrences(of: " \(marker)", with: marker == section ? #", "zz_unknown": 1"# : "")
        }
        guard case .failure(let errors) = PipelineDecoder.decode(text: text, file: "x"),
              let message = errors.errors.first?.message,
              let list = message.components(separatedBy: "expected one of: ").last?.dropLast()
        else { return [] }
        return Set(list.components(separatedBy: ", "))
    }

    @Test func schemaAndDecoderAgreeOnEveryObjectsKeys() {
        #expect(decoderKeys(section: "CONNECTION").count == 12)
        #expect(decoderKeys(section: "POOL").contains("max_total"))
        #expect(!decoderKeys(section: "UPSTREAM_POOL").contains("max_total"))  // pipeline-wide only
        #expect(schemaKeys([]) == decoderKeys(section: "ROOT"))
        #expect(schemaKeys(["properties", "listen"]) == decoderKeys(section: "LISTEN"))
        #expect(schemaKeys(["properties", "upstreams", "items"]) == decoderKeys(section: "UPSTREAM"))
        #expect(schemaKeys(["properties", "connection"]) == decoderKeys(section: "CONNECTION"))
        #expect(schemaKeys(["properties", "stages", "items"]) == decoderKeys(section: "STAGE"))
        #expect(schemaKeys(["properties", "connection", "properties", "pool"]) == decoderKeys(section: "POOL"))
        #expect(schemaKeys(["properties", "upstreams", "items", "properties", "pool"]) == decoderKeys(section: "UPSTREAM_POOL"))
    }

    func schema(_ file: String) -> JSONValue {
        let text = (try? String(contentsOfFile: "\(TestEnvironment.repositoryRoot)/pipelines/\(file)", encoding: .utf8)) ?? "{}"
        return (try? JSONValue.parse(text)) ?? .null
    }

    func keys(of node: JSONValue?, _ path: [String]) -> Set<String> {
        var node = node ?? .null
        for step in path { node = node[step] ?? .null }
        guard case .object(let members)? = node["properties"] else { return [] }
        return Set(members.map(\.0))
    }

    /// The keys the decoder expected where `document` has `"zz_unknown": 1`.
    func expectedKeys(_ document: String) -> Set<String> {
        guard case .failure(let errors) = PipelineDecoder.decodeFile(text: document, file: "x"),
              let message = errors.errors.first(where: { $0.message.contains("expected one of: ") })?.message,
              let list = message.components(separatedBy: "expected one of: ").last?.dropLast()
        else { return [] }
        return Set(list.components(separatedBy: ", "))
    }

    @Test func schemasAndDecoderAgreeOnTheReverseTunnelsKeys() {
        let tls = #""tls": {"ca": "a", "cert": "b", "key": "c" TLS}"#
        let connector = #"{"version": 1, "name": "c", "listen": {"reverse": {"relay": "r:1", "service": "s", \#(tls) REVERSE}}, "upstreams": [{"name": "u", "reverse": {"service": "s" UPREV}}]}"#
        func connectorKeys(_ marker: String) -> Set<String> {
            var text = connector
            for m in ["TLS", "REVERSE", "UPREV"] { text = text.replacingOccurrences(of: " \(m)", with: m == marker ? #", "zz_unknown": 1"# : "") }
            return expectedKeys(text)
        }
        let listen = ["properties", "listen", "properties", "reverse"]
        #expect(schemaKeys(listen) == connectorKeys("REVERSE") && connectorKeys("REVERSE").contains("connections"))
        #expect(schemaKeys(listen + ["properties", "tls"]) == connectorKeys("TLS"))
        #expect(schemaKeys(["properties", "upstreams", "items", "properties", "reverse"]) == connectorKeys("UPREV"))

        let relaySchema = schema("relay.schema.json")
        let relay = #"{"version": 1, "name": "r" ROOT, "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b", "client_ca": "c" TLS}, "services": {"s": {"allow": ["x"] SERVICE}} RELAY}}"#
        func relayKeys(_ marker: String) -> Set<String> {
            var text = relay
            for m in ["ROOT", "TLS", "SERVICE", "RELAY"] { text = text.replacingOccurrences(of: " \(m)", with: m == marker ? #", "zz_unknown": 1"# : "") }
            return expectedKeys(text)
        }
        #expect(keys(of: relaySchema, []) == relayKeys("ROOT"))
        #expect(keys(of: relaySchema, ["properties", "relay"]) == relayKeys("RELAY"))
        #expect(keys(of: relaySchema, ["properties", "relay", "properties", "tls"]) == relayKeys("TLS"))
        #expect(keys(of: relaySchema, ["properties", "relay", "properties", "services", "additionalProperties"]) == relayKeys("SERVICE"))
    }
}
