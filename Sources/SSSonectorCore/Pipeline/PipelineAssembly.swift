import Foundation
import ConfigValues
import Logging

/// Loads a pipeline's plugins and creates its stage instances, in chain order. Errors name the
/// stage's JSON path: `stages[1].plugin: ...` for a library that cannot be used,
/// `stages[1].config.max_failures: ...` for a config the stage rejected.
public enum PipelineAssembly {
    /// Creates every stage of `config`; on any error destroys what it created.
    public static func createStages(
        _ config: PipelineConfig, upstreams: UpstreamSnapshot, threadCount: Int,
        clock: any HostClock, metrics: MetricsRegistry, logger: Logger,
        poster: (any ConnectionPoster)?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Result<[StageInstance], PipelineErrors> {
        let search = PluginSearchPath.standard(pipelineDirectory: config.directory, pluginPath: config.pluginPath,
                                               environment: environment)
        var created: [StageInstance] = []
        var errors: [ConfigError] = []
        for stage in config.stages {
            let type: StageType
            do {
                let library = try PluginLibrary.load(stage.plugin, relativeTo: config.directory, searchPath: search, logger: logger)
                type = try library.type(named: stage.type)
            } catch {
                let key = error.kind == .unknownType ? "type" : "plugin"
                errors.append(ConfigError(path: "\(stage.path).\(key)", error.description))
                continue
            }
            var stageLogger = logger
            stageLogger[metadataKey: "stage"] = "\(stage.name)"
            let services = HostServices(logger: stageLogger, clock: clock, metrics: metrics,
                                        metricLabels: [("pipeline", config.name), ("stage", stage.name)],
                                        poster: poster)
            do {
                created.append(try StageInstance(type: type, name: stage.name, pipeline: config.name,
                                                 configJSON: stage.configJSON, upstreams: upstreams,
                                                 threadCount: threadCount, services: services))
            } catch {
                errors.append(configError(error.message, stagePath: stage.path))
            }
        }
        guard errors.isEmpty else {
            created.forEach { $0.destroy() }
            return .failure(PipelineErrors(file: config.file, errors))
        }
        return .success(created)
    }

    /// A stage's create error under its path. Stages report `key.path: message` for a key of
    /// their config (StageKit does); that becomes `stages[i].config.key.path: message`.
    static func configError(_ text: String, stagePath: String) -> ConfigError {
        if let colon = text.range(of: ": ") {
            let head = text[..<colon.lowerBound]
            let isPath = !head.isEmpty && head.allSatisfy { $0.isLetter || $0.isNumber || "_.[]-\"".contains($0) }
            if isPath { return ConfigError(path: "\(stagePath).config.\(head)", String(text[colon.upperBound...])) }
        }
        return ConfigError(path: "\(stagePath).config", text)
    }
}
