import ConfigValues

/// `listen.tls` (docs/pipeline-reference.md, docs/operations.md): terminate TLS; with `client_ca`, require client certificates signed
/// by it (mutual TLS). Paths are absolute (resolved against the pipeline file's folder).
public struct ServerTLSSettings: Sendable, Equatable {
    public var certificate: String
    public var key: String
    public var clientCA: String?
    /// "1.2" (default) or "1.3"; TLS 1.3 is always preferred when both sides have it.
    public var minimumVersion: String
}

/// `upstreams[].tls`: originate TLS to the upstream; its certificate is always verified (against
/// `ca`, or the system's trust roots without it); `cert` and `key` present a client certificate.
public struct ClientTLSSettings: Sendable, Equatable {
    public var ca: String?
    public var certificate: String?
    public var key: String?
    /// The name checked against the server certificate (and sent as SNI). Default: the
    /// upstream's host when it is a name.
    public var serverName: String?
}

extension PipelineDecoder {
    static func decodeServerTLS(_ o: ConfigObject, base: String) throws(ConfigError) -> ServerTLSSettings {
        let cert = try o.requiredString("cert")
        let key = try o.requiredString("key")
        let ca = try o.string("client_ca")
        let version = try o.choice("min_version", ["1.2", "1.3"], default: "1.2")
        try o.finish()
        return ServerTLSSettings(certificate: resolve(cert, base), key: resolve(key, base),
                                 clientCA: ca.map { resolve($0, base) }, minimumVersion: version)
    }

    static func decodeClientTLS(_ o: ConfigObject, base: String) throws(ConfigError) -> ClientTLSSettings {
        let ca = try o.string("ca")
        let cert = try o.string("cert")
        let key = try o.string("key")
        let name = try o.string("server_name")
        try o.finish()
        if let name, name.isEmpty || name.utf8.count > 253 {
            throw ConfigError(path: o.path(of: "server_name"), "expected a host name of 1...253 characters, found \(name.quotedForMessage())")
        }
        if (cert == nil) != (key == nil) {
            throw ConfigError(path: o.path(of: cert == nil ? "cert" : "key"), "cert and key go together: give both or neither")
        }
        return ClientTLSSettings(ca: ca.map { resolve($0, base) }, certificate: cert.map { resolve($0, base) },
                                 key: key.map { resolve($0, base) }, serverName: name)
    }

    private static func resolve(_ path: String, _ base: String) -> String {
        PluginSearchPath.resolve(path, against: base)
    }
}
