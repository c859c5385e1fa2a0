import Foundation
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// `sssonector plugin new`: a C and a Swift stage scaffolded into a folder outside this
/// repository, built there with their own build files, loaded by a real host process, and bytes
/// moved through them.
@Suite(.serialized) struct ScaffoldTests {
    /// Runs `command` in `directory`; fails the test with its output if it does not exit 0.
    func run(_ command: [String], in directory: String) throws {
        // GNU env's --chdir runs the command in `directory`.
        let finished = try ChildProcess.run("/usr/bin/env", ["--chdir", directory] + command, errorsToOutput: true)
        let succeeded = finished.status == 0 && !finished.bySignal
        #expect(succeeded, "\(command.joined(separator: " ")) in \(directory):\n\(finished.stdout.suffix(3000))")
        if !succeeded { throw ScaffoldFailure() }
    }

    struct ScaffoldFailure: Error {}

    /// Scaffolds `name` in `language` outside the repository and returns the project folder.
    func scaffold(_ name: String, _ language: String) throws -> String {
        let out = TestEnvironment.temporaryDirectory()
        #expect(!out.hasPrefix(TestEnvironment.repositoryRoot))
        let r = try HostProcess.runToEnd(["plugin", "new", name, "--lang", language, "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        return "\(out)/\(name)"
    }

    /// Loads `library` into a host, relays 256 KiB through it, and checks every byte.
    func carriesTraffic(_ library: String, config: String) async throws {
        let check = try HostProcess.runToEnd(["plugin", "check", library])
        #expect(check.status == 0, "\(check.stderr)")
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])],
                                stages: #"[{"name": "scaffolded", "plugin": "\#(library)", "config": \#(config)}]"#)
        let host = try HostProcess(["run", file])
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
        let data = pattern(256 * 1024)
        try client.send(data)
        #expect(try client.receive(exactly: data.count) == data)
        client.shutdownWrite()
        #expect(try client.receiveToEnd() == [])
        await echo.stop()
    }

    @Test func aCStageIsScaffoldedBuiltWithMakeAndCarriesTraffic() async throws {
        let project = try scaffold("pace_c", "c")
        try run(["make"], in: project)
        try run(["make", "test"], in: project)
        try await carriesTraffic("\(project)/libpace_c.so", config: #"{"bytes_per_second": 100000000}"#)
    }

    @Test(.timeLimit(.minutes(10)))
    func aSwiftStageIsScaffoldedBuiltWithSwiftPMAndCarriesTraffic() async throws {
        let project = try scaffold("pace_swift", "swift")
        // The stage's own product only; its tests (StageTestKit, which builds the host's
        // dependencies) are run by hand: `swift test` in the project.
        try run(["swift", "build", "--product", "pace_swift"], in: project)
        try await carriesTraffic("\(project)/.build/debug/libpace_swift.so", config: #"{"bytes_per_second": "100MiB/s"}"#)
    }

    @Test func aBadNameOrAnExistingFolderIsRefused() throws {
        let bad = try HostProcess.runToEnd(["plugin", "new", "Bad-Name", "--lang", "c"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("NAME: expected lowercase letters"), "\(bad.stderr)")
        let out = TestEnvironment.temporaryDirectory()
        #expect(try HostProcess.runToEnd(["plugin", "new", "twice", "--lang", "c", "--out", out]).status == 0)
        let again = try HostProcess.runToEnd(["plugin", "new", "twice", "--lang", "c", "--out", out])
        #expect(again.status == 2)
        #expect(again.stderr.contains("already exists"), "\(again.stderr)")
    }
}
