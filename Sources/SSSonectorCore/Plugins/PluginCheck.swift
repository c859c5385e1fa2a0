import Logging
import StageABI

/// `sssonector plugin check LIB`: the ABI conformance checks for a third-party library, each
/// problem reported on one line. `sssonector plugin info LIB` uses the same load.
public struct PluginCheckReport: Sendable {
    /// The library file (or the name that could not be found).
    public let library: String
    /// The library, when it loaded far enough to describe itself.
    public let plugin: PluginLibrary?
    /// One line per problem; empty when the library passed.
    public let problems: [String]
    /// What was checked and passed, one line each.
    public let passed: [String]

    public var ok: Bool { problems.isEmpty }
}

public enum PluginCheck {
    /// Runs every check: the file loads with all symbols resolved; it exports the entry
    /// symbol; the entry accepts this host; the ABI major matches; descriptor sizes are at
    /// least those of ABI 1.0; every declared event has its hook; each type can be created
    /// with an empty config (or rejects it with an error text) and destroyed.
    public static func run(_ plugin: String, searchPath: PluginSearchPath = .standard(pipelineDirectory: nil)) -> PluginCheckReport {
        let inspection: PluginLibrary.Inspection
        do {
            inspection = try PluginLibrary.inspect(plugin, relativeTo: nil, searchPath: searchPath)
        } catch {
            return PluginCheckReport(library: error.library, plugin: nil, problems: [error.description], passed: [])
        }
        let path = inspection.path
        var problems = inspection.problems.map { "\(path): \($0.message)" }
        var passed: [String] = []
        guard let library = inspection.library else {
            return PluginCheckReport(library: path, plugin: nil, problems: problems, passed: passed)
        }
        passed.append("exports \(SSS_ENTRY_SYMBOL); ABI \(library.abiMajor).\(library.abiMinor) (host \(SSS_ABI_MAJOR).\(SSS_ABI_MINOR))")
        if problems.isEmpty {
            passed.append("module descriptor and \(library.types.count) stage type(s) have valid sizes")
        }
        for type in library.types {
            passed.append("type '\(type.name)': hooks present for events \(type.supportedEvents)")
            switch createAndDestroy(type) {
            case .created: passed.append("type '\(type.name)': create with {} and destroy")
            case .rejected(let text): passed.append("type '\(type.name)': create with {} rejected with an explanation: \(text)")
            case .problem(let text): problems.append("\(path): \(text)")
            }
        }
        return PluginCheckReport(library: path, plugin: library, problems: problems, passed: passed)
    }

    enum CreateOutcome { case created, rejected(String), problem(String) }

    /// Creates the type with `{}` and destroys it. A rejection with error text is fine (a stage
    /// may require config); a rejection without text is a problem.
    static func createAndDestroy(_ type: StageType) -> CreateOutcome {
        let services = HostServices(logger: Logger(label: "sssonector.check"), clock: SystemClock(),
                                    metrics: MetricsRegistry(), metricLabels: [], poster: nil)
        do {
            let instance = try StageInstance(type: type, name: "check", pipeline: "check", configJSON: "{}",
                                             upstreams: UpstreamSnapshot(entries: [], generation: 1),
                                             threadCount: 1, services: services)
            instance.destroy()
            return .created
        } catch {
            if error.message.hasPrefix("create failed with status") {
                return .problem("type '\(type.name)': create with {} failed without an error text (\(error.message))")
            }
            return .rejected(error.message)
        }
    }
}
