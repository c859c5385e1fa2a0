import ArgumentParser
import SSSonectorCore

/// `sssonector plugin info|check LIB`.
struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin", abstract: "Inspect stage libraries, or start a new one.",
        subcommands: [Info.self, Check.self, PluginNew.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a library's module name and version, ABI version, stage types and their events.")

        @Argument(help: "A short name (ratelimit) or a path to a .so file.")
        var library: String

        func run() throws {
            let plugin: PluginLibrary
            do {
                plugin = try PluginLibrary.load(library, relativeTo: currentDirectory())
            } catch {
                printError(error.description)
                throw SSSonectorCommand.invalidInput
            }
            print("library: \(plugin.path)")
            print("module: \(plugin.moduleName) \(plugin.moduleVersion)")
            print("abi: \(plugin.abiMajor).\(plugin.abiMinor)")
            print("types:")
            for type in plugin.types {
                print("  \(type.name)\(type.summary.isEmpty ? "" : ": \(type.summary)")")
                print("    events: \(type.supportedEvents.names.joined(separator: " "))")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the ABI conformance checks on a library; one line per problem (exit 2 when any).")

        @Argument(help: "A short name or a path to a .so file.")
        var library: String

        func run() throws {
            let path = library.contains("/") || library.hasSuffix(".so")
                ? PluginSearchPath.resolve(library, against: currentDirectory()) : library
            let report = PluginCheck.run(path)
            for line in report.passed { print("ok: \(line)") }
            for line in report.problems { printError("problem: \(line)") }
            if !report.ok { throw SSSonectorCommand.invalidInput }
            print("\(report.library): all checks passed")
        }
    }
}
