import Foundation
import Glibc
import Testing
@testable import SSSonectorCore

/// Files an operator names that are not what they claim: a FIFO (used to block `open` forever,
/// with SIGTERM blocked), a truncated plugin (used to be SIGBUS in every command that loaded
/// it), a leaf certificate as `client_ca`, an empty `server_name`.
@Suite struct FileInputTests {
    func certificates() throws -> String {
        let dir = TestEnvironment.temporaryDirectory() + "/certs"
        let r = try HostProcess.runToEnd(["certs", "init", "--out", dir, "--name", "localhost"])
        #expect(r.status == 0, "\(r.stderr)")
        return dir
    }

    func fifo(_ name: String) -> String {
        let path = TestEnvironment.temporaryDirectory() + "/" + name
        #expect(mkfifo(path, 0o600) == 0)
        return path
    }

    @Test func aTruncatedPluginIsRefusedNotACrash() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: TestEnvironment.builtPlugin("tracker")))
        let truncated = TestEnvironment.temporaryDirectory() + "/libtruncated.so"
        try whole.prefix(4096).write(to: URL(fileURLWithPath: truncated))
        for command in [["plugin", "check", truncated], ["plugin", "info", truncated]] {
            let r = try HostProcess.runToEnd(command)
            #expect(r.status == 2, "\(command): exit \(r.status)")
            #expect(r.stderr.contains("\(truncated): cannot load: truncated"), "\(r.stderr)")
        }
        let notELF = TestEnvironment.writeFile("libtext.so", "just text")
        let r = try HostProcess.runToEnd(["plugin", "check", notELF])
        #expect(r.status == 2)
        #expect(r.stderr.contains("not an ELF shared library"), "\(r.stderr)")
    }

    @Test func aFIFOAsPluginAsKeyOrAsPipelineIsRefusedAtOnce() throws {
        let plugin = fifo("x.so")
        let check = try HostProcess.runToEnd(["plugin", "check", plugin])
        #expect(check.status == 2)
        #expect(check.stderr.contains("not a regular file (it is a FIFO)"), "\(check.stderr)")

        let certs = try certificates()
        let key = fifo("server.key")
        let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0", "tls": {"cert": "\#(certs)/server.pem", "key": "\#(key)"}}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]}"#
        let tls = try HostProcess.runToEnd(["validate", TestEnvironment.writeFile("p.json", text)])
        #expect(tls.status == 2)
        #expect(tls.stderr.contains("listen.tls.key: cannot read \(key): not a regular file (it is a FIFO)"), "\(tls.stderr)")

        let pipeline = fifo("pipeline.json")
        let run = try HostProcess.runToEnd(["validate", pipeline])
        #expect(run.status == 2)
        #expect(run.stderr.contains("\(pipeline): cannot read the file: not a regular file (it is a FIFO)"), "\(run.stderr)")
    }

    @Test func aLeafAsClientCAAndAnEmptyServerNameAreRefused() throws {
        let certs = try certificates()
        let leaf = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0", "tls": {"cert": "\#(certs)/server.pem", "key": "\#(certs)/server.key", "client_ca": "\#(certs)/client.pem"}}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]}"#
        let a = try HostProcess.runToEnd(["validate", TestEnvironment.writeFile("p.json", leaf)])
        #expect(a.status == 2)
        #expect(a.stderr.contains("listen.tls.client_ca: \(certs)/client.pem: the certificate for"), "\(a.stderr)")
        #expect(a.stderr.contains("is not a CA"), "\(a.stderr)")

        let empty = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9", "tls": {"ca": "\#(certs)/ca.pem", "server_name": ""}}]}"#
        let b = try HostProcess.runToEnd(["validate", TestEnvironment.writeFile("p.json", empty)])
        #expect(b.status == 2)
        #expect(b.stderr.contains(#"upstreams[0].tls.server_name: expected a host name of 1...253 characters, found """#), "\(b.stderr)")
    }
}
