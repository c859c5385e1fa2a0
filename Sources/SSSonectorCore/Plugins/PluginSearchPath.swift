import Foundation

/// Where a pipeline's `plugin` names are looked up (docs/pipeline-reference.md), in order:
/// 1. the directories of the pipeline file's `plugin_path` (relative to the file),
/// 2. the directories of `SSSONECTOR_PLUGIN_PATH` (colon-separated),
/// 3. the directory of the running executable,
/// 4. the system library path (libltdl: `LTDL_LIBRARY_PATH`, `LD_LIBRARY_PATH`, ld.so's path).
///
/// A short name `ratelimit` matches `libratelimit.so` or `ratelimit.so`. A name containing a
/// `/` or ending in `.so` is a file path, relative to the pipeline file.
public struct PluginSearchPath: Sendable, Equatable {
    /// Directories searched before the system path, in order.
    public var directories: [String]

    public init(directories: [String]) {
        self.directories = directories
    }

    /// The standard order for a pipeline file in `baseDirectory` with `plugin_path` entries.
    public static func standard(
        pipelineDirectory baseDirectory: String?,
        pluginPath: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> PluginSearchPath {
        var dirs: [String] = pluginPath.map { resolve($0, against: baseDirectory) }
        if let env = environment["SSSONECTOR_PLUGIN_PATH"] {
            dirs += env.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        if let exe = executableDirectory() { dirs.append(exe) }
        return PluginSearchPath(directories: dirs)
    }

    /// What a `plugin` string names: an existing file, or a short name for the system path.
    public enum Resolution: Equatable, Sendable {
        case file(String)
        case systemName(String)
        case missingFile(String)
    }

    /// Resolves `plugin` (a short name or a path) to a file, or to a name for the system path.
    public func resolve(_ plugin: String, relativeTo baseDirectory: String?) -> Resolution {
        if Self.isPath(plugin) {
            let path = Self.resolve(plugin, against: baseDirectory)
            return FileManager.default.fileExists(atPath: path) ? .file(path) : .missingFile(path)
        }
        for dir in directories {
            for candidate in ["lib\(plugin).so", "\(plugin).so"] {
                let path = (dir as NSString).appendingPathComponent(candidate)
                if FileManager.default.fileExists(atPath: path) { return .file(path) }
            }
        }
        return .systemName("lib\(plugin)")
    }

    static func isPath(_ plugin: String) -> Bool {
        plugin.contains("/") || plugin.hasSuffix(".so")
    }

    public static func resolve(_ path: String, against base: String?) -> String {
        guard let base, !path.hasPrefix("/") else { return path }
        return ((base as NSString).appendingPathComponent(path) as NSString).standardizingPath
    }

    /// The folder of `/proc/self/exe`: where `swift build` puts the plugins next to the host
    /// (and next to the test runner).
    public static func executableDirectory() -> String? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        else { return nil }
        return (exe as NSString).deletingLastPathComponent
    }
}
