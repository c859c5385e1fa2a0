import ConfigValues
import Foundation
@testable import SSSonectorCore

/// A reverse tunnel on loopback for a test: a relay host (a relay file and the pipeline that
/// exposes its service) and connector hosts that dial it, all real `sssonector` processes with
/// an admin port, certificates from `certs init --connector`.
final class ReverseTunnelHosts: @unchecked Sendable {
    static let service = "echo"
    static let identity = "db1.connector.example"

    let directory: String
    let certs: String
    let relay: HostProcess
    /// Where clients connect (the relay's exposed pipeline) and where connectors dial.
    let publicPort: Int
    let tunnelPort: Int
    let relayAdmin: Int

    /// Starts the relay host; `allow` lists the identities allowed to serve the service.
    init(allow: [String] = [ReverseTunnelHosts.identity], connection: String = "{\"retry_attempts\": 0}") throws {
        directory = TestEnvironment.temporaryDirectory()
        certs = directory + "/certs"
        let issued = try HostProcess.runToEnd(["certs", "init", "--out", certs, "--connector", Self.identity])
        guard issued.status == 0 else { throw HostStartError(stderr: issued.stderr) }
        let allowed = allow.map { "\"\($0)\"" }.joined(separator: ", ")
        let relayFile = TestEnvironment.writeFile("relay.json", """
            {"version": 1, "name": "tunnels",
             "relay": {"address": "127.0.0.1:0",
                       "tls": {"cert": "certs/server.pem", "key": "certs/server.key", "client_ca": "certs/ca.pem"},
                       "services": {"\(Self.service)": {"allow": [\(allowed)]}}}}
            """, in: directory)
        let exposed = TestEnvironment.writeFile("exposed.json", """
            {"version": 1, "name": "public", "listen": {"address": "127.0.0.1:0"},
             "upstreams": [{"name": "tunnel", "reverse": {"service": "\(Self.service)"}}],
             "connection": \(connection)}
            """, in: directory)
        relay = try HostProcess(["run", "--log-level", "info", "--admin", "127.0.0.1:0", relayFile, exposed], pipelines: 3)
        guard let publicPort = relay.port(of: "public"), let tunnelPort = relay.relayPort(of: "tunnels"),
              let relayAdmin = relay.adminPort else {
            relay.stop()
            throw HostStartError(stderr: relay.stderr)
        }
        self.publicPort = publicPort
        self.tunnelPort = tunnelPort
        self.relayAdmin = relayAdmin
    }

    /// Starts a connector host serving the service from `upstreamPort`, with a certificate for
    /// `identity` issued by the CA in `certs` (default: the relay's).
    func startConnector(upstreamPort: Int, identity: String = ReverseTunnelHosts.identity, certs: String? = nil,
                        connections: Int = 2, name: String = "connector") throws -> HostProcess {
        let folder = certs ?? self.certs
        if !FileManager.default.fileExists(atPath: "\(folder)/connector-\(identity).pem") {
            let issued = try HostProcess.runToEnd(["certs", "init", "--out", folder, "--connector", identity])
            guard issued.status == 0 else { throw HostStartError(stderr: issued.stderr) }
        }
        let file = TestEnvironment.writeFile("\(name).json", """
            {"version": 1, "name": "\(name)",
             "listen": {"reverse": {"relay": "127.0.0.1:\(tunnelPort)", "service": "\(Self.service)", "connections": \(connections),
                        "tls": {"ca": "\(self.certs)/ca.pem", "cert": "\(folder)/connector-\(identity).pem",
                                "key": "\(folder)/connector-\(identity).key", "server_name": "localhost"}}},
             "upstreams": [{"name": "private", "address": "127.0.0.1:\(upstreamPort)"}]}
            """, in: directory)
        return try HostProcess(["run", "--log-level", "info", "--admin", "127.0.0.1:0", file], pipelines: 2)
    }

    /// The relay's `/stats` "relay.services.echo" object.
    func serviceStats() -> JSONValue {
        guard let (status, json) = try? httpJSON("GET", port: relayAdmin, "/stats"), status == 200 else { return .null }
        return json["relay"]?["services"]?[Self.service] ?? .null
    }

    /// A figure of the service on the relay.
    func serviceFigure(_ key: String) -> Int { serviceStats()[key]?.intValue ?? -1 }

    /// A figure of the relay itself (`handshake_failures`, ...).
    func relayFigure(_ key: String) -> Int {
        guard let (_, json) = try? httpJSON("GET", port: relayAdmin, "/stats") else { return -1 }
        return json["relay"]?[key]?.intValue ?? -1
    }

    /// A connector host's `/stats` "pipelines.connector.reverse" figure.
    static func connectorFigure(_ host: HostProcess, _ key: String, pipeline: String = "connector") -> Int {
        guard let port = host.adminPort, let (_, json) = try? httpJSON("GET", port: port, "/stats") else { return -1 }
        return json["pipelines"]?[pipeline]?["reverse"]?[key]?.intValue ?? -1
    }

    /// Open descriptors of a process (Linux `/proc`).
    static func openDescriptors(_ host: HostProcess) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(host.process.processIdentifier)/fd").count) ?? -1
    }

    func stop() { relay.stop() }
}

extension JSONValue {
    /// A number's integer value (stats figures), or nil.
    var intValue: Int? {
        guard case .number(let n) = self else { return nil }
        return Int(n)
    }
}
