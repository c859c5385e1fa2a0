import Foundation
import StageABI
import Testing
@testable import SSSonectorCore

/// `sssonector validate`, `run` and `plugin` on bad input: exit code 2 and the exact path.
@Suite struct CommandLineTests {
    func validate(_ text: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let file = TestEnvironment.writeFile("p.json", text)
        let result = try HostProcess.runToEnd(["validate", file])
        return (result.status, result.stdout, result.stderr.replacingOccurrences(of: file, with: "p.json"))
    }

    static let base = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}], "stages": STAGES}"#

    func pipeline(stages: String) -> String { Self.base.replacingOccurrences(of: "STAGES", with: stages) }

    @Test func aValidPipelineWithRealPluginsPrintsOk() throws {
        let r = try validate(pipeline(stages: #"[{"name": "cap", "plugin": "bytecap", "config": {"max_bytes": 100}}]"#))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "ok\n")
    }

    @Test(arguments: [
        (#"{"version": 1,"#, "p.json: malformed JSON at line 1, column 15: unexpected end of input"),
        (#"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}], "stagess": []}"#,
         "p.json: stagess: unknown key"),
        (#"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9", "weight": "heavy"}]}"#,
         #"p.json: upstreams[0].weight: expected a whole number, found "heavy""#),
        (#"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}], "connection": {"idle_timeout": "forever"}}"#,
         #"p.json: connection.idle_timeout: expected a duration with a unit such as "250ms", "30s", "5m", found "forever""#),
        (base.replacingOccurrences(of: "STAGES", with: #"[{"name": "x", "plugin": "nosuchplugin"}]"#),
         "p.json: stages[0].plugin: libnosuchplugin: no libnosuchplugin.so found in"),
        (base.replacingOccurrences(of: "STAGES", with: #"[{"name": "x", "plugin": "bytecap", "config": {"max_bytes": -5}}]"#),
         #"p.json: stages[0].config.max_bytes: expected a size in bytes, or a string such as "64KiB", found -5"#),
        (base.replacingOccurrences(of: "STAGES", with: #"[{"name": "x", "plugin": "bytecap", "type": "nope"}]"#),
         "p.json: stages[0].type: "),
        (#"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}], "connection": {"data_path": "fast"}}"#,
         #"p.json: connection.data_path: expected one of "auto", "nio", "epoll", found "fast""#),
        (#"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "db.example:5432"}], "connection": {"data_path": "epoll"}}"#,
         "p.json: upstreams[0].address: upstream a is a host name: the epoll data path carries plain TCP only"),
    ])
    func badInputExitsTwoNamingThePath(_ text: String, _ expected: String) throws {
        let r = try validate(text)
        #expect(r.status == 2)
        #expect(r.stderr.contains(expected), "stderr was: \(r.stderr)")
        #expect(!r.stdout.contains("ok"))
    }

    @Test func validatePrintsEveryErrorOfEveryFile() throws {
        let a = TestEnvironment.writeFile("a.json", pipeline(stages: #"[{"name": "x", "plugin": "bytecap", "config": {"max_bytes": "many"}}, {"name": "y", "plugin": "missing"}]"#))
        let b = TestEnvironment.writeFile("b.json", "[]")
        let r = try HostProcess.runToEnd(["validate", a, b])
        #expect(r.status == 2)
        let lines = r.stderr.split(separator: "\n").filter { $0.contains(".json: ") }
        #expect(lines.count == 3, "\(r.stderr)")
        #expect(lines.contains { $0.hasPrefix("\(b): expected an object, found an array") })
    }

    @Test func theDataPathFlagRefusesEpollForAPipelineThatNeedsSwiftNIOAndAutoTakesNIOForIt() throws {
        let tls = TestEnvironment.writeFile("p.json", Self.base.replacingOccurrences(of: "STAGES", with: "[]")
            .replacingOccurrences(of: #""listen": {"address": "127.0.0.1:0"}"#,
                                  with: #""listen": {"address": "127.0.0.1:0", "tls": {"cert": "c.pem", "key": "k.pem"}}"#))
        let forced = try HostProcess.runToEnd(["validate", "--data-path", "epoll", tls])
        #expect(forced.status == 2)
        #expect(forced.stderr.contains("listen.tls: the listener terminates TLS: the epoll data path carries plain TCP only"), "\(forced.stderr)")
        let plain = TestEnvironment.writeFile("p.json", pipeline(stages: "[]"))
        #expect(try HostProcess.runToEnd(["validate", "--data-path", "epoll", plain]).status == 0)
        #expect(try HostProcess.runToEnd(["validate", "--data-path", "sideways", plain]).status == 2)
    }

    @Test func runWithInvalidInputExitsTwoAndAMissingFileIsNamed() throws {
        let r = try HostProcess.runToEnd(["run", "/nonexistent/pipeline.json"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/pipeline.json: cannot read the file"))
        let usage = try HostProcess.runToEnd(["run", "--threads", "0", "x.json"])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("--threads must be 1...1024"))
    }

    @Test func pluginInfoAndCheckOnEveryLibraryTheBuildProduces() throws {
        for name in ["bytecap", "scriptstage"] {
            let info = try HostProcess.runToEnd(["plugin", "info", TestEnvironment.builtPlugin(name)])
            #expect(info.status == 0, "\(info.stderr)")
            #expect(info.stdout.contains("abi: 1.\(SSS_ABI_MINOR)"))
            let check = try HostProcess.runToEnd(["plugin", "check", TestEnvironment.builtPlugin(name)])
            #expect(check.status == 0, "\(check.stderr)")
        }
        let c = try HostProcess.runToEnd(["plugin", "info", try CPlugins.allowlist()])
        #expect(c.stdout.contains("module: allowlist 1.0.0"))
        #expect(c.stdout.contains("events: open stats"))
        let bad = try HostProcess.runToEnd(["plugin", "check", try CPlugins.fixture("WRONG_MAJOR")])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("problem: ") && bad.stderr.contains("built for stage ABI 2.\(SSS_ABI_MINOR)"))
    }
}
