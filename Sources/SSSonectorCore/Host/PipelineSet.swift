import ConfigValues
import Foundation
import Logging

/// Pipeline files read, validated and assembled (plugins loaded, stages created), ready to run
/// or to be destroyed after `validate`. Every error of every file is collected.
public struct PipelineSet {
    public let runtimes: [PipelineRuntime]

    /// Reads every file, then creates every pipeline's stages. Errors are one line each,
    /// `<file>: <json path>: <message>`.
    static func assemble(
        files: [String], threadCount: Int, clock: any HostClock, metrics: MetricsRegistry,
        registry: ConnectionRegistry, logger: Logger
    ) -> Result<PipelineSet, PipelineSetErrors> {
        var lines: [String] = []
        var configs: [PipelineConfig] = []
        for file in files {
            switch PipelineDecoder.load(file: file) {
            case .success(let config):
                if let other = configs.first(where: { $0.name == config.name }) {
                    lines.append("\(file): name: pipeline \"\(config.name)\" is also defined in \(other.file)")
                } else if let other = configs.first(where: { $0.listen.address == config.listen.address && config.listen.address.port != 0 }) {
                    lines.append("\(file): listen.address: \(config.listen.text) is also used by pipeline \"\(other.name)\"")
                } else {
                    configs.append(config)
                }
            case .failure(let errors):
                lines += errors.lines
            }
        }
        var runtimes: [PipelineRuntime] = []
        for config in configs {
            let (tls, tlsErrors) = PipelineTLS.build(config)
            guard tlsErrors.isEmpty else {
                lines += tlsErrors.map { "\(config.file): \($0)" }
                continue
            }
            let upstreams = UpstreamTable(config.upstreams.map { ($0.name, $0.address.description, $0.weight) })
            var pipelineLogger = logger
            pipelineLogger[metadataKey: "pipeline"] = "\(config.name)"
            let scope = ConnectionScope()
            switch PipelineAssembly.createStages(config, upstreams: upstreams.current, threadCount: threadCount,
                                                 clock: clock, metrics: metrics, logger: pipelineLogger,
                                                 poster: registry.poster(scopedTo: scope)) {
            case .success(let stages):
                let chain = StageChain(stages: stages, pipeline: config.name, listener: config.listen.text)
                runtimes.append(PipelineRuntime(config: config, upstreams: upstreams, chain: chain, clock: clock,
                                                registry: registry, scope: scope, logger: pipelineLogger, tls: tls))
            case .failure(let errors):
                lines += errors.lines
            }
        }
        guard lines.isEmpty else {
            runtimes.forEach { $0.destroyStages() }
            return .failure(PipelineSetErrors(lines: lines))
        }
        return .success(PipelineSet(runtimes: runtimes))
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
