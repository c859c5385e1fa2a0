import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore

/// `docs/pipeline-reference.md` must list exactly the keys the decoder accepts, object by
/// object. The decoder's keys come from its own "unknown key (expected one of: ...)" errors.
@Suite struct PipelineReferenceTests {
    /// The first-column keys of the table under each heading of the reference.
    let tables: [String: Set<String>] = {
        let path = "\(TestEnvironment.repositoryRoot)/docs/pipeline-reference.md"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var result: [String: Set<String>] = [:]
        var heading = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                heading = line.drop { $0 == "#" || $0 == " " }.replacingOccurrences(of: "`", with: "")
            } else if line.hasPrefix("| `") {
                let key = line.dropFirst(3).prefix { $0 != "`" }
                result[heading, default: []].insert(String(key))
            }
        }
        return result
    }()

    /// The keys the decoder expects in the object where `"zz_unknown": 1` is inserted.
    func decoderKeys(_ document: String) -> Set<String> {
        guard case .failure(let errors) = PipelineDecoder.decodeFile(text: document, file: "x"),
              let message = errors.errors.first?.message,
              let list = message.components(separatedBy: "expected one of: ").last?.dropLast()
        else { return [] }
        return Set(list.components(separatedBy: ", "))
    }

    func document(root: String = "", listen: String = "", tls: String? = nil, upstream: String = "", upstreamTLS: String? = nil,
                  connection: String = "", pool: String = "", upstreamPool: String = "", stage: String = "") -> String {
        let listenTLS = tls.map { #", "tls": {"cert": "c", "key": "k"\#($0)}"# } ?? ""
        let upTLS = upstreamTLS.map { #", "tls": {"ca": "c"\#($0)}"# } ?? ""
        return """
        {"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"\(listenTLS)\(listen)},
         "upstreams": [{"name": "a", "address": "127.0.0.1:9"\(upTLS)\(upstream), "pool": {"max_idle": 4\(upstreamPool)}}],
         "connection": {"idle_timeout": "1s"\(connection), "pool": {"enabled": true\(pool)}},
         "stages": [{"name": "s", "plugin": "p"\(stage)}], "plugin_path": []\(root)}
        """
    }

    @Test func theReferenceListsExactlyTheDecodersKeys() {
        let odd = #", "zz_unknown": 1"#
        let expectations: [(String, Set<String>)] = [
            ("The file (root object)", decoderKeys(document(root: odd))),
            ("listen", decoderKeys(document(listen: odd))),
            ("listen.tls", decoderKeys(document(tls: odd))),
            ("upstreams[]", decoderKeys(document(upstream: odd))),
            ("upstreams[].tls", decoderKeys(document(upstreamTLS: odd))),
            ("connection", decoderKeys(document(connection: odd))),
            ("connection.pool", decoderKeys(document(pool: odd))),
            ("upstreams[].pool", decoderKeys(document(upstreamPool: odd))),
            ("stages[]", decoderKeys(document(stage: odd))),
            ("listen.reverse", decoderKeys(#"{"version": 1, "name": "c", "listen": {"reverse": {"relay": "r:1", "service": "s", "tls": {"ca": "a", "cert": "b", "key": "c"}\#(odd)}}, "upstreams": [{"name": "u", "address": "127.0.0.1:2"}]}"#)),
            ("relay", decoderKeys(#"{"version": 1, "name": "r", "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b", "client_ca": "c"}, "services": {"s": {"allow": ["x"]}}\#(odd)}}"#)),
        ]
        for (heading, keys) in expectations {
            #expect(!keys.isEmpty, "no keys from the decoder for \(heading)")
            #expect(tables[heading] == keys, "\(heading): reference \(tables[heading] ?? []) vs decoder \(keys)")
        }
    }
}
