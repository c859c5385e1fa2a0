import ConfigValues
import Foundation

/// Turns pipeline JSON into a `PipelineConfig`, strictly: an unknown key, a wrong type, a bad
/// duration, a duplicate name or an out-of-range value is an error with its JSON path. It
/// reports every error it can find, not just the first.
public enum PipelineDecoder {
    /// The current (and only) pipeline file version.
    public static let version = 1

    /// Reads and decodes pipeline `file`. Errors are `"<file>: <path>: <message>"` lines.
    public static func load(file: String) -> Result<PipelineConfig, PipelineErrors> {
        loadFile(file).flatMap { hostFile in
            guard case .pipeline(let config) = hostFile else {
                return .failure(PipelineErrors(file: file, [ConfigError(path: "relay", "a relay file, where a pipeline was expected")]))
            }
            return .success(config)
        }
    }

    /// Decodes pipeline JSON `text` that came from `file`.
    public static func decode(text: String, file: String) -> Result<PipelineConfig, PipelineErrors> {
        decodeFile(text: text, file: file).flatMap { hostFile in
            guard case .pipeline(let config) = hostFile else {
                return .failure(PipelineErrors(file: file, [ConfigError(path: "relay", "a relay file, where a pipeline was expected")]))
            }
            return .success(config)
        }
    }

    /// Reads and decodes a host file: a pipeline, or a relay (a root with a `relay` block).
    public static func loadFile(_ file: String) -> Result<HostFile, PipelineErrors> {
        do {
            return decodeFile(text: try RegularFile.readText(file), file: file)
        } catch {
            return .failure(PipelineErrors(file: file, [ConfigError(path: "", "cannot read the file: \(error)")]))
        }
    }

    /// Decodes a host file's `text`: a pipeline, or a relay (a root with a `relay` block).
    public static func decodeFile(text: String, file: String) -> Result<HostFile, PipelineErrors> {
        let json: JSONValue
        do {
            json = try JSONValue.parse(text)
        } catch {
            return .failure(PipelineErrors(file: file, [ConfigError(path: "", error.description)]))
        }
        var errors: [ConfigError] = []
        let decoded = decode(json, file: file, errors: &errors)
        if let decoded, errors.isEmpty { return .success(decoded) }
        return .failure(PipelineErrors(file: file, errors))
    }

    static func decode(_ json: JSONValue, file: String, errors: inout [ConfigError]) -> HostFile? {
        func attempt<T>(_ body: () throws(ConfigError) -> T) -> T? {
            do { return try body() } catch { errors.append(error); return nil }
        }
        guard let root = attempt({ () throws(ConfigError) in try ConfigObject(json, path: "") }) else { return nil }
        _ = attempt { () throws(ConfigError) in
            guard let v = try root.int("version") else { throw ConfigError(path: "version", "required: the pipeline format version (1)") }
            guard v == version else { throw ConfigError(path: "version", "unsupported version \(v); this host reads version \(version)") }
        }
        let name = attempt { () throws(ConfigError) -> String in
            let n = try root.requiredString("name")
            guard !n.isEmpty, n.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ConfigError(path: "name", "expected letters, digits, '-', '_' or '.', found \(n.quotedForMessage())")
            }
            return n
        }
        if case .object(let members) = json, members.contains(where: { $0.0 == "relay" }) {
            root.markKnown("$schema")
            let relay = decodeRelay(root, file: file, name: name, errors: &errors)
            _ = attempt { () throws(ConfigError) in try root.finish() }
            guard let relay, errors.isEmpty else { return nil }
            return .relay(relay)
        }
        let base = PipelineConfig.directory(of: file)
        let listen = attempt { () throws(ConfigError) -> ListenConfig in try decodeListen(root, base: base) }
        let connection = attempt { () throws(ConfigError) -> ConnectionSettings in try decodeConnection(root) } ?? ConnectionSettings()
        let upstreams = decodeUpstreams(root, base: base, pool: connection.pool, errors: &errors)
        let stages = decodeStages(root, errors: &errors)
        let pluginPath = attempt { () throws(ConfigError) -> [String] in
            try (root.array("plugin_path") ?? []).map { (path, value) throws(ConfigError) -> String in
                guard case .string(let s) = value, !s.isEmpty else {
                    throw ConfigError(path: path, "expected a directory path string, found \(value.jsonText)")
                }
                return s
            }
        } ?? []
        root.markKnown("$schema")  // editors may point at pipeline.schema.json
        _ = attempt { () throws(ConfigError) in try root.finish() }
        guard let name, let listen, errors.isEmpty else { return nil }
        return .pipeline(PipelineConfig(file: file, name: name, listen: listen, upstreams: upstreams,
                                        connection: connection, stages: stages, pluginPath: pluginPath))
    }

    static func decodeListen(_ root: ConfigObject, base: String) throws(ConfigError) -> ListenConfig {
        guard let listen = try root.object("listen") else {
            throw ConfigError(path: "listen", "required: {\"address\": \"127.0.0.1:7000\"}")
        }
        if let reverseObject = try listen.object("reverse") {
            let reverse = try decodeReverseListen(reverseObject, base: base)
            for key in ["address", "tls"] where listen.value(key) != nil {
                throw ConfigError(path: listen.path(of: key), "a connector (listen.reverse) binds no address: the relay chooses where its service listens")
            }
            try listen.finish()
            return ListenConfig(address: reverse.relay, text: "reverse:\(reverse.service)@\(reverse.relay)", tls: nil, reverse: reverse)
        }
        let text = try listen.requiredString("address")
        let tls = try listen.object("tls").map { o throws(ConfigError) in try decodeServerTLS(o, base: base) }
        try listen.finish()
        switch EndpointAddress.parse(text, allowPortZero: true) {
        case .success(let address): return ListenConfig(address: address, text: text, tls: tls)
        case .failure(let problem): throw ConfigError(path: "listen.address", problem.message)
        }
    }

    static func decodeUpstreams(_ root: ConfigObject, base: String, pool: PoolSettings, errors: inout [ConfigError]) -> [UpstreamConfig] {
        let items: [(path: String, value: JSONValue)]
        do {
            guard let list = try root.array("upstreams"), !list.isEmpty else {
                errors.append(ConfigError(path: "upstreams", "required: at least one {\"name\", \"address\"}"))
                return []
            }
            items = list
        } catch {
            errors.append(error)
            return []
        }
        var result: [UpstreamConfig] = []
        for (path, value) in items {
            do throws(ConfigError) {
                let u = try ConfigObject(value, path: path)
                let name = try u.requiredString("name")
                let weight = try u.int("weight", default: 1, in: 0...1_000_000, rangeText: "a weight in 0...1000000")
                guard !name.isEmpty else { throw ConfigError(path: "\(path).name", "must not be empty") }
                if result.contains(where: { $0.name == name }) {
                    throw ConfigError(path: "\(path).name", "duplicate upstream name \"\(name)\"")
                }
                if let reverse = try u.object("reverse") {
                    let service = try reverse.requiredString("service")
                    try checkServiceName(service, path: reverse.path(of: "service"))
                    try reverse.finish()
                    for key in ["address", "tls", "pool"] where u.value(key) != nil {
                        throw ConfigError(path: u.path(of: key), "a reverse upstream has no \(key): its connectors dial out to this host's relay over their own TLS connections")
                    }
                    try u.finish()
                    result.append(UpstreamConfig(name: name, address: EndpointAddress(host: service, port: 0), weight: UInt32(weight),
                                                 tls: nil, pool: PoolSettings(), reverseService: service))
                    continue
                }
                let addressText = try u.requiredString("address")
                let tls = try u.object("tls").map { o throws(ConfigError) in try decodeClientTLS(o, base: base) }
                let upstreamPool = try u.object("pool").map { o throws(ConfigError) in
                    try PoolSettings.decode(o, over: pool, pipelineLevel: false)
                } ?? pool
                try u.finish()
                switch EndpointAddress.parse(addressText, allowPortZero: false) {
                case .success(let address):
                    result.append(UpstreamConfig(name: name, address: address, weight: UInt32(weight), tls: tls, pool: upstreamPool))
                case .failure(let problem): throw ConfigError(path: "\(path).address", problem.message)
                }
            } catch {
                errors.append(error)
            }
        }
        if !result.isEmpty, result.allSatisfy({ $0.weight == 0 }) {
            errors.append(ConfigError(path: "upstreams", "every weight is 0: at least one upstream must take traffic"))
        }
        return result
    }

    static func decodeConnection(_ root: ConfigObject) throws(ConfigError) -> ConnectionSettings {
        var s = ConnectionSettings()
        guard let c = try root.object("connection") else { return s }
        s.maxConnections = try c.int("max_connections", default: s.maxConnections, in: 1...10_000_000)
        s.keepAlive = try c.bool("keep_alive", default: s.keepAlive)
        // TCP_KEEPIDLE takes at most 32767 s.
        s.keepAliveIdle = try c.duration("keep_alive_idle", default: s.keepAliveIdle, minimum: 1_000_000_000,
                                         maximum: 32_767_000_000_000)
        s.retryAttempts = try c.int("retry_attempts", default: s.retryAttempts, in: 0...100)
        s.retryInterval = try c.duration("retry_interval", default: s.retryInterval, maximum: ConnectionSettings.maximumRetryInterval)
        s.connectTimeout = try c.duration("connect_timeout", default: s.connectTimeout, minimum: 1_000_000,
                                          maximum: ConnectionSettings.maximumConnectTimeout)
        s.openTimeout = try c.duration("open_timeout", default: s.openTimeout, minimum: 1_000_000,
                                       maximum: ConnectionSettings.maximumOpenTimeout)
        s.idleTimeout = try c.duration("idle_timeout", default: s.idleTimeout)
        s.drainTimeout = try c.duration("drain_timeout", default: s.drainTimeout)
        s.bufferLimit = try c.size("buffer_limit", default: s.bufferLimit, in: 0...ConnectionSettings.maximumBufferLimit)
        if s.bufferLimit < 4096 {
            throw ConfigError(path: c.path(of: "buffer_limit"), "expected at least 4096 bytes")
        }
        if let pool = try c.object("pool") {
            s.pool = try PoolSettings.decode(pool, over: s.pool, pipelineLevel: true)
        }
        if let path = try c.string("data_path") {
            guard let choice = DataPathChoice(rawValue: path) else {
                throw ConfigError(path: c.path(of: "data_path"),
                                  "expected one of \(DataPathChoice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \"\(path)\"")
            }
            s.dataPath = choice
        }
        try c.finish()
        return s
    }

    static func decodeStages(_ root: ConfigObject, errors: inout [ConfigError]) -> [StageConfig] {
        let items: [(path: String, value: JSONValue)]
        do {
            items = try root.array("stages") ?? []
        } catch {
            errors.append(error)
            return []
        }
        var result: [StageConfig] = []
        for (path, value) in items {
            do throws(ConfigError) {
                let s = try ConfigObject(value, path: path)
                let name = try s.requiredString("name")
                let plugin = try s.requiredString("plugin")
                let type = try s.string("type")
                let config = s.value("config") ?? .object([])
                try s.finish()
                guard case .object = config else {
                    throw ConfigError(path: "\(path).config", "expected an object, found \(config.typeName)")
                }
                guard !name.isEmpty else { throw ConfigError(path: "\(path).name", "must not be empty") }
                guard !plugin.isEmpty else { throw ConfigError(path: "\(path).plugin", "must not be empty") }
                if result.contains(where: { $0.name == name }) {
                    throw ConfigError(path: "\(path).name", "duplicate stage name \"\(name)\"")
                }
                result.append(StageConfig(name: name, plugin: plugin, type: type, configJSON: config.jsonText, path: path))
            } catch {
                errors.append(error)
            }
        }
        return result
    }

    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}

/// Every error found in one pipeline file.
public struct PipelineErrors: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let errors: [ConfigError]

    public init(file: String, _ errors: [ConfigError]) {
        self.file = file
        self.errors = errors
    }

    /// One line per error: `<file>: <path>: <message>`.
    public var lines: [String] { errors.map { "\(file): \($0)" } }
    public var description: String { lines.joined(separator: "\n") }
}
