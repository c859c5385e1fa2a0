import ConfigValues
import Foundation
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// Mutual TLS on loopback with certificates from `certs init`: the two-host tunnel, real
/// OpenSSL peers on either side, every refusal, and misconfiguration caught by `validate`.
@Suite struct TLSEndToEndTests {
    /// A fresh certificate set; returns its folder.
    func certificates(names: [String] = ["localhost", "127.0.0.1"]) throws -> String {
        let dir = TestEnvironment.temporaryDirectory() + "/certs"
        let r = try HostProcess.runToEnd(["certs", "init", "--out", dir] + names.flatMap { ["--name", $0] })
        #expect(r.status == 0, "\(r.stderr)")
        return dir
    }

    func serverPipeline(certs: String, upstreamPort: Int, minVersion: String = "1.2") -> String {
        let text = """
        {"version": 1, "name": "server", "listen": {"address": "127.0.0.1:0",
          "tls": {"cert": "\(certs)/server.pem", "key": "\(certs)/server.key", "client_ca": "\(certs)/ca.pem", "min_version": "\(minVersion)"}},
         "upstreams": [{"name": "service", "address": "127.0.0.1:\(upstreamPort)"}],
         "stages": [{"name": "who", "plugin": "scriptstage", "config": {}}]}
        """
        return TestEnvironment.writeFile("server.json", text)
    }

    func clientPipeline(certs: String, remotePort: Int, serverName: String = "localhost") -> String {
        let text = """
        {"version": 1, "name": "client", "listen": {"address": "127.0.0.1:0"},
         "upstreams": [{"name": "remote", "address": "127.0.0.1:\(remotePort)",
           "tls": {"ca": "\(certs)/ca.pem", "cert": "\(certs)/client.pem", "key": "\(certs)/client.key", "server_name": "\(serverName)"}}],
         "connection": {"retry_attempts": 0}}
        """
        return TestEnvironment.writeFile("client.json", text)
    }

    /// Runs `openssl ARGS` with `input` on stdin, for at most `seconds` (s_client -quiet keeps
    /// the connection open after its input ends, so the timeout is what ends it).
    func openssl(_ args: [String], input: String = "", seconds: Double = 3) throws -> (status: Int32, stdout: String, stderr: String) {
        // SIGKILL: a child of the test runner may inherit a mask that blocks SIGTERM.
        let finished = try ChildProcess.run("/usr/bin/env", ["timeout", "-s", "KILL", String(seconds), "openssl"] + args,
                                            input: Data(input.utf8))
        return (finished.status, finished.stdout, finished.stderr)
    }

    @Test func certsInitWritesAMutualTLSSetWithPrivateKeysAndSubjectAltNames() throws {
        let dir = try certificates(names: ["tunnel.example", "10.1.2.3"])
        for name in CertificateKit.files {
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
            #expect(name.hasSuffix(".key") ? mode == 0o600 : mode == 0o644, "\(name): \(String(mode, radix: 8))")
        }
        let san = try openssl(["x509", "-in", "\(dir)/server.pem", "-noout", "-ext", "subjectAltName"])
        #expect(san.stdout.contains("DNS:tunnel.example") && san.stdout.contains("IP Address:10.1.2.3"), "\(san.stdout)")
        let key = try openssl(["pkey", "-in", "\(dir)/server.key", "-noout", "-text"])
        #expect(key.stdout.contains("prime256v1") || key.stdout.contains("P-256"))
        let verify = try openssl(["verify", "-CAfile", "\(dir)/ca.pem", "\(dir)/server.pem", "\(dir)/client.pem"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let serials = try ["server.pem", "client.pem"].map { try openssl(["x509", "-in", "\(dir)/\($0)", "-noout", "-serial"]).stdout }
        #expect(serials[0] != serials[1] && serials[0].count > 30)
        let again = try HostProcess.runToEnd(["certs", "init", "--out", dir])
        #expect(again.status == 2 && again.stderr.contains("exists (use --force"))
    }

    @Test func connectorCertificatesCarryTheirIdentityAndChainToTheTunnelCA() throws {
        let dir = try certificates()
        let name = "db1.connector.example"
        let issued = try HostProcess.runToEnd(["certs", "init", "--out", dir, "--connector", name])
        #expect(issued.status == 0, "\(issued.stderr)")
        #expect(issued.stdout.split(separator: "\n").count == 2)  // the existing CA signs it; nothing else is rewritten
        let mode = (try FileManager.default.attributesOfItem(atPath: "\(dir)/connector-\(name).key")[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        let verify = try openssl(["verify", "-CAfile", "\(dir)/ca.pem", "-purpose", "sslclient", "\(dir)/connector-\(name).pem"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let subject = try openssl(["x509", "-in", "\(dir)/connector-\(name).pem", "-noout", "-subject", "-ext", "subjectAltName"])
        #expect(subject.stdout.contains("CN = \(name)") && subject.stdout.contains("DNS:\(name)"), "\(subject.stdout)")
        let again = try HostProcess.runToEnd(["certs", "init", "--out", dir, "--connector", name])
        #expect(again.status == 2 && again.stderr.contains("connector-\(name).pem exists (use --force"))
        let bad = try HostProcess.runToEnd(["certs", "init", "--out", dir, "--connector", "../evil"])
        #expect(bad.status == 2 && bad.stderr.contains("expected a DNS-style name"))
        // In an empty folder it makes the CA set first, then the connector's.
        let fresh = TestEnvironment.temporaryDirectory() + "/fresh"
        let both = try HostProcess.runToEnd(["certs", "init", "--out", fresh, "--connector", "edge-1"])
        #expect(both.status == 0 && both.stdout.split(separator: "\n").count == 8, "\(both.stdout)\(both.stderr)")
        #expect(try openssl(["verify", "-CAfile", "\(fresh)/ca.pem", "\(fresh)/connector-edge-1.pem"]).status == 0)
    }

    @Test func bytesCrossTheMutualTLSTunnelIntact() async throws {
        let certs = try certificates()
        let echo = try await EchoUpstreams(count: 1)
        let server = try HostProcess(["run", "--log-level", "info", serverPipeline(certs: certs, upstreamPort: echo.ports[0])])
        defer { server.stop() }
        let serverPort = try #require(server.port(of: "server"))
        let client = try HostProcess(["run", clientPipeline(certs: certs, remotePort: serverPort)])
        defer { client.stop() }
        let port = try #require(client.port(of: "client"))
        let connection = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
        let data = pattern(1_000_000, seed: 3)
        let sender = Thread { try? connection.send(data); connection.shutdownWrite() }
        sender.start()
        #expect(try connection.receiveToEnd() == data)
        // The server host logged the verified client identity on accept.
        #expect(eventually { server.stderr.contains("TLS client verified") && server.stderr.contains("CN=sssonector-client") })
        await echo.stop()
    }

    @Test func noPlaintextCrossesTheTunnelAndReloadPicksUpNewCertificates() async throws {
        let certs = try certificates()
        let echo = try await EchoUpstreams(count: 1)
        let serverFile = serverPipeline(certs: certs, upstreamPort: echo.ports[0])
        let server = try HostProcess(["run", serverFile])
        defer { server.stop() }
        let spy = try TCPSpy(forwardingTo: try #require(server.port(of: "server")))
        defer { spy.stop() }
        let client = try HostProcess(["run", clientPipeline(certs: certs, remotePort: spy.port)])
        defer { client.stop() }
        let port = try #require(client.port(of: "client"))
        let secret = Array("TOP-SECRET-PAYLOAD-".utf8)
        let message = (0..<200).flatMap { _ in secret }
        let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
        try c.send(message)
        #expect(try c.receive(exactly: message.count) == message)
        c.shutdownWrite()
        _ = try c.receiveToEnd()
        #expect(eventually { spy.bytes.count > message.count })  // everything went through the spy...
        let captured = spy.bytes
        let found = (0...(captured.count - secret.count)).contains { Array(captured[$0..<($0 + secret.count)]) == secret }
        #expect(!found, "plaintext crossed the tunnel")  // ...and none of it in the clear

        // New certificates (another CA) in the same files; SIGHUP: new clients need the new CA.
        let old = TestEnvironment.temporaryDirectory()
        for name in CertificateKit.files { try FileManager.default.copyItem(atPath: "\(certs)/\(name)", toPath: "\(old)/\(name)") }
        let again = try HostProcess.runToEnd(["certs", "init", "--force", "--out", certs, "--name", "localhost"])
        #expect(again.status == 0)
        kill(server.process.processIdentifier, SIGHUP)
        #expect(eventually { server.stderr.contains("reloaded") })
        let serverPort = try #require(server.port(of: "server"))
        let target = ["-connect", "127.0.0.1:\(serverPort)", "-servername", "localhost"]
        let fresh = try openssl(["s_client", "-quiet", "-CAfile", "\(certs)/ca.pem", "-cert", "\(certs)/client.pem", "-key", "\(certs)/client.key"] + target,
                                input: "fresh certificates\n")
        #expect(fresh.stdout.contains("fresh certificates"), "\(fresh.stderr)")
        let stale = try openssl(["s_client", "-quiet", "-CAfile", "\(old)/ca.pem", "-cert", "\(old)/client.pem", "-key", "\(old)/client.key"] + target,
                                input: "stale certificates\n")
        #expect(!stale.stdout.contains("stale certificates"))
        await echo.stop()
    }

    @Test func opensslClientsAreServedOnlyWithAValidCertificateAndVersion() async throws {
        let certs = try certificates()
        let other = try certificates()
        let echo = try await EchoUpstreams(count: 1)
        let server = try HostProcess(["run", serverPipeline(certs: certs, upstreamPort: echo.ports[0])])
        defer { server.stop() }
        let port = try #require(server.port(of: "server"))
        let target = ["-connect", "127.0.0.1:\(port)", "-CAfile", "\(certs)/ca.pem", "-servername", "localhost"]
        let good = try openssl(["s_client", "-quiet", "-cert", "\(certs)/client.pem", "-key", "\(certs)/client.key"] + target,
                               input: "ping through TLS\n")
        #expect(good.stdout.contains("ping through TLS"), "\(good.stderr)")
        let noCertificate = try openssl(["s_client", "-quiet"] + target, input: "no cert\n")
        #expect(!noCertificate.stdout.contains("no cert"))
        let otherCA = try openssl(["s_client", "-quiet", "-cert", "\(other)/client.pem", "-key", "\(other)/client.key"] + target,
                                  input: "other ca\n")
        #expect(!otherCA.stdout.contains("other ca"))
        let oldVersion = try openssl(["s_client", "-quiet", "-tls1_1", "-cert", "\(certs)/client.pem", "-key", "\(certs)/client.key"] + target,
                                     input: "old tls\n")
        #expect(!oldVersion.stdout.contains("old tls"))
        #expect(eventually { server.stderr.components(separatedBy: "TLS handshake refused").count - 1 >= 3 })
        await echo.stop()
    }

    @Test func theUpstreamSideVerifiesAnOpenSSLServerAndRefusesAWrongName() async throws {
        // DNS name only: swift-nio-ssl also accepts a certificate whose IP SAN matches the
        // connected address, which would make any server_name pass on 127.0.0.1.
        let certs = try certificates(names: ["localhost"])
        let serverPort = try freePortForChildProcess()
        let sServer = try ChildProcess("/usr/bin/env", ["openssl", "s_server", "-quiet", "-rev", "-accept", "127.0.0.1:\(serverPort)",
                                                        "-cert", "\(certs)/server.pem", "-key", "\(certs)/server.key",
                                                        "-CAfile", "\(certs)/ca.pem", "-Verify", "1"])
        defer { kill(sServer.processIdentifier, SIGKILL); sServer.waitUntilExit() }
        #expect(eventually { (try? BlockingTCPClient(host: "127.0.0.1", port: serverPort)) != nil })
        let client = try HostProcess(["run", "--log-level", "debug", clientPipeline(certs: certs, remotePort: serverPort)])
        defer { client.stop() }
        let port = try #require(client.port(of: "client"))
        let c = try BlockingTCPClient(host: "127.0.0.1", port: port)
        try c.send(Array("hello\n".utf8))
        #expect(try c.receive(exactly: 6) == Array("olleh\n".utf8))  // s_server -rev reverses each line
        c.reset()  // s_server serves one connection at a time: free it for the next client

        let wrong = try HostProcess(["run", "--log-level", "debug", clientPipeline(certs: certs, remotePort: serverPort, serverName: "wrong.example")])
        defer { wrong.stop() }
        let wrongPort = try #require(wrong.port(of: "client"))
        let refused = try BlockingTCPClient(host: "127.0.0.1", port: wrongPort)
        try? refused.send(Array("hello\n".utf8))
        let nothing: [UInt8]
        do { nothing = try refused.receiveToEnd() } catch { nothing = [] }
        #expect(nothing.isEmpty)
        #expect(eventually { wrong.stderr.contains("cause=connect_failed") })
    }

    @Test func validateCatchesTLSMisconfigurationWithThePath() throws {
        let certs = try certificates()
        func errors(_ tls: String) throws -> String {
            let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0", "tls": \#(tls)}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]}"#
            let r = try HostProcess.runToEnd(["validate", TestEnvironment.writeFile("p.json", text)])
            #expect(r.status == 2)
            return r.stderr
        }
        #expect(try errors(#"{"cert": "\#(certs)/nope.pem", "key": "\#(certs)/server.key"}"#).contains("listen.tls.cert: cannot read \(certs)/nope.pem"))
        #expect(try errors(#"{"cert": "\#(certs)/server.pem", "key": "\#(certs)/client.key"}"#).contains("listen.tls: the certificate and key do not work together"))
        #expect(try errors(#"{"cert": "\#(certs)/server.pem"}"#).contains("listen.tls.key: required string is missing"))
        let expired = TestEnvironment.temporaryDirectory()
        try CertificateKit.initialize(.init(directory: expired, serverNames: ["localhost"], validityDays: 1,
                                            notBefore: Date().addingTimeInterval(-10 * 86_400)))
        #expect(try errors(#"{"cert": "\#(expired)/server.pem", "key": "\#(expired)/server.key"}"#).contains("listen.tls.cert: \(expired)/server.pem: the certificate for"))
        let ok = try HostProcess.runToEnd(["validate", serverPipeline(certs: certs, upstreamPort: 9)])
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}
