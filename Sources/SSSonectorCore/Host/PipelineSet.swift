import ConfigValues
import Foundation
import Logging
import NIOSSL

/// Pipeline files read, validated and assembled (plugins loaded, stages created), ready to run
/// or to be destroyed after `validate`. Every error of every file is collected.
public struct PipelineSet {
    public let runtimes: [PipelineRuntime]
    /// Relay files (docs/reverse-tunnel.md) with their TLS contexts.
    let relays: [(config: RelayConfig, context: NIOSSLContext)]

    /// Reads every file, then creates every pipeline's stages. Errors are one line each,
    /// `<file>: <json path>: <message>`.
    static func assemble(
        files: [String], threadCount: Int, clock: any HostClock, metrics: MetricsRegistry,
        registry: ConnectionRegistry, logger: Logger, relayHub: RelayHub? = nil, dataPath: DataPathChoice = .hostDefault
    ) -> Result<PipelineSet, PipelineSetErrors> {
        var lines: [String] = []
        var configs: [PipelineConfig] = []
        var relayConfigs: [RelayConfig] = []
        var names: [String: String] = [:]  // pipeline and relay names share one namespace
        for file in files {
            switch PipelineDecoder.loadFile(file) {
            case .success(.pipeline(let config)):
                if let other = names[config.name] {
                    lines.append("\(file): name: pipeline \"\(config.name)\" is also defined in \(other)")
                } else if config.listen.reverse == nil,
                          let other = configs.first(where: { $0.listen.reverse == nil && $0.listen.address == config.listen.address && config.listen.address.port != 0 }) {
                    lines.append("\(file): listen.address: \(config.listen.text) is also used by pipeline \"\(other.name)\"")
                } else {
                    names[config.name] = file
                    configs.append(config)
                }
            case .success(.relay(let relay)):
                if let other = names[relay.name] {
                    lines.append("\(file): name: \"\(relay.name)\" is also defined in \(other)")
                } else {
                    names[relay.name] = file
                    relayConfigs.append(relay)
                }
            case .failure(let errors):
                lines += errors.lines
            }
        }
        var relays: [(config: RelayConfig, context: NIOSSLContext)] = []
        for relay in relayConfigs {
            do {
                relays.append((relay, try TLSContextFactory.server(relay.tls, path: "relay.tls")))
            } catch {
                lines.append("\(relay.file): \(error)")
            }
        }
        let declared = Set(relayConfigs.flatMap { $0.services.map(\.name) })
        for config in configs {
            for (i, upstream) in config.upstreams.enumerated() {
                guard let service = upstream.reverseService, !declared.contains(service) else { continue }
                let known = declared.isEmpty ? "no relay file is loaded" : "declared: \(declared.sorted().joined(separator: ", "))"
                lines.append("\(config.file): upstreams[\(i)].reverse.service: no relay file declares service \"\(service)\" (\(known))")
            }
        }
        var runtimes: [PipelineRuntime] = []
        for config in configs {
            let path: DataPath
            do {
                path = try (config.connection.dataPath ?? dataPath).resolve(for: config)
            } catch {
                lines.append("\(config.file): \(error)")
                continue
            }
            let (tls, tlsErrors) = PipelineTLS.build(config)
            guard tlsErrors.isEmpty else {
                lines += tlsErrors.map { "\(config.file): \($0)" }
                continue
            }
            let upstreams = UpstreamTable(config.upstreams.map { ($0.name, $0.addressText, $0.weight) })
            var pipelineLogger = logger
            pipelineLogger[metadataKey: "pipeline"] = "\(config.name)"
            let scope = ConnectionScope()
            switch PipelineAssembly.createStages(config, upstreams: upstreams.current, threadCount: threadCount,
                                                 clock: clock, metrics: metrics, logger: pipelineLogger,
                                                 poster: registry.poster(scopedTo: scope)) {
            case .success(let stages):
                let chain = StageChain(stages: stages, pipeline: config.name, listener: config.listen.text)
                runtimes.append(PipelineRuntime(config: config, upstreams: upstreams, chain: chain, clock: clock,
                                                registry: registry, scope: scope, logger: pipelineLogger, tls: tls,
                                                relayHub: relayHub, dataPath: path))
            case .failure(let errors):
                lines += errors.lines
            }
        }
        guard lines.isEmpty else {
            runtimes.forEach { $0.destroyStages() }
            return .failure(PipelineSetErrors(lines: lines))
        }
        return .success(PipelineSet(runtimes: runtimes, relays: relays))
    }

    /// Destroys every stage instance (after every connection has closed).
    func destroy() {
        runtimes.forEach { $0.destroyStages() }
    }
}

/// Everything wrong with a set of pipeline files, one line per problem.
public struct PipelineSetErrors: Error, CustomStringConvertible {
    public let lines: [String]
    public var description: String { lines.joined(separator: "\n") }
}
