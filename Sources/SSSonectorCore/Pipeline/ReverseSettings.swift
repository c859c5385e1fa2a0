import ConfigValues

/// `listen.reverse` (docs/reverse-tunnel.md): the pipeline is a **connector**. Instead of binding
/// a port it dials out to a relay over mutual TLS, registers `service`, and takes the streams the
/// relay opens as its accepted connections.
public struct ReverseListenConfig: Sendable, Equatable {
    /// The relay's tunnel address, `host:port`.
    public var relay: EndpointAddress
    /// The service this connector serves: the name the relay's `services` allow it.
    public var service: String
    /// Long-lived TLS connections kept open to the relay; streams spread over them.
    public var connections: Int
    /// The connector's certificate, key and the CA that signed the relay's certificate.
    public var tls: ClientTLSSettings

    public static let defaultConnections = 2
    public static let maximumConnections = 64
}

/// A relay file (docs/reverse-tunnel.md): accepts connectors on `address` over mutual TLS and
/// says which connector identity may serve which service. The services are exposed by ordinary
/// pipelines of the same host whose upstreams name them (`upstreams[].reverse.service`).
public struct RelayConfig: Sendable {
    public var file: String
    public var name: String
    public var address: EndpointAddress
    /// The address as written (logs).
    public var text: String
    /// The relay's certificate and key, and the CA whose connector certificates it accepts.
    public var tls: ServerTLSSettings
    /// Service name → the connector identities allowed to serve it (a certificate's subject
    /// CN or one of its DNS or URI SANs, compared exactly).
    public var services: [(name: String, allow: [String])]
}

/// What one host file holds: a pipeline or a relay.
public enum HostFile: Sendable {
    case pipeline(PipelineConfig)
    case relay(RelayConfig)
}

extension PipelineDecoder {
    /// Service names: what `:authority` carries and `/stats` keys by.
    static func checkServiceName(_ name: String, path: String) throws(ConfigError) {
        guard !name.isEmpty, name.utf8.count <= 253, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ConfigError(path: path, "expected a service name of letters, digits, '-', '_' or '.', found \(name.quotedForMessage())")
        }
    }

    static func decodeReverseListen(_ o: ConfigObject, base: String) throws(ConfigError) -> ReverseListenConfig {
        let relayText = try o.requiredString("relay")
        let service = try o.requiredString("service")
        try checkServiceName(service, path: o.path(of: "service"))
        let connections = try o.int("connections", default: ReverseListenConfig.defaultConnections,
                                    in: 1...ReverseListenConfig.maximumConnections)
        guard let tlsObject = try o.object("tls") else {
            throw ConfigError(path: o.path(of: "tls"), "required: {\"ca\", \"cert\", \"key\"}: a connector always authenticates with a certificate")
        }
        let tls = try decodeClientTLS(tlsObject, base: base)
        try o.finish()
        guard tls.ca != nil else { throw ConfigError(path: tlsObject.path(of: "ca"), "required: the CA that signed the relay's certificate") }
        guard tls.certificate != nil else { throw ConfigError(path: tlsObject.path(of: "cert"), "required: the connector's certificate (sssonector certs init --connector NAME)") }
        switch EndpointAddress.parse(relayText, allowPortZero: false) {
        case .success(let relay): return ReverseListenConfig(relay: relay, service: service, connections: connections, tls: tls)
        case .failure(let problem): throw ConfigError(path: o.path(of: "relay"), problem.message)
        }
    }

    /// Decodes a relay file's root (`version`, `name`, `relay`).
    static func decodeRelay(_ root: ConfigObject, file: String, name: String?, errors: inout [ConfigError]) -> RelayConfig? {
        do throws(ConfigError) {
            guard let relay = try root.object("relay") else { return nil }
            let base = PipelineConfig.directory(of: file)
            let text = try relay.requiredString("address")
            guard let tlsObject = try relay.object("tls") else {
                throw ConfigError(path: relay.path(of: "tls"), "required: {\"cert\", \"key\", \"client_ca\"}: connectors are authenticated by certificate")
            }
            var tls = try decodeServerTLS(tlsObject, base: base)
            guard tls.clientCA != nil else {
                throw ConfigError(path: tlsObject.path(of: "client_ca"), "required: the CA that signs connector certificates")
            }
            if tls.minimumVersion != "1.3", tlsObject.members.contains(where: { $0.0 == "min_version" }) {
                throw ConfigError(path: tlsObject.path(of: "min_version"), "a relay speaks TLS 1.3 only: write \"1.3\" or leave it out")
            }
            tls.minimumVersion = "1.3"
            guard let servicesObject = try relay.object("services") else {
                throw ConfigError(path: relay.path(of: "services"), "required: {\"NAME\": {\"allow\": [\"connector identity\"]}}")
            }
            var services: [(name: String, allow: [String])] = []
            for (key, value) in servicesObject.members {
                let path = servicesObject.path(of: key)
                servicesObject.markKnown(key)
                try checkServiceName(key, path: path)
                if services.contains(where: { $0.name == key }) { throw ConfigError(path: path, "duplicate service \"\(key)\"") }
                let entry = try ConfigObject(value, path: path)
                guard let list = try entry.array("allow"), !list.isEmpty else {
                    throw ConfigError(path: entry.path(of: "allow"), "required: at least one connector identity (certificate CN or SAN)")
                }
                let allow = try list.map { (itemPath, value) throws(ConfigError) -> String in
                    guard case .string(let s) = value, !s.isEmpty else {
                        throw ConfigError(path: itemPath, "expected an identity string, found \(value.jsonText)")
                    }
                    return s
                }
                try entry.finish()
                services.append((key, allow))
            }
            try servicesObject.finish()
            guard !services.isEmpty else { throw ConfigError(path: relay.path(of: "services"), "required: at least one service") }
            try relay.finish()
            guard let name else { return nil }
            switch EndpointAddress.parse(text, allowPortZero: true) {
            case .success(let address):
                return RelayConfig(file: file, name: name, address: address, text: text, tls: tls, services: services)
            case .failure(let problem): throw ConfigError(path: relay.path(of: "address"), problem.message)
            }
        } catch {
            errors.append(error)
            return nil
        }
    }
}
