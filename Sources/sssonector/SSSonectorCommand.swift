import ArgumentParser
import SSSonectorCore

/// `sssonector`: the host. Subcommands do the work; this type only wires them.
struct SSSonectorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sssonector",
        abstract: "Relays TCP connections through a chain of stage plugins to upstream services.",
        subcommands: [Run.self, Validate.self, PluginCommand.self, CertsCommand.self, Demo.self])

    /// Exit codes (docs/operations.md, "Running").
    static let invalidInput = ExitCode(2)
    static let runtimeFailure = ExitCode(1)

    /// Argument-parser reports usage errors with 64; exit 2 is for invalid input (README, "Running pipelines").
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Self.exit(withError: exit)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure || code.rawValue == 64 {
                printError(fullMessage(for: error))
                Self.exit(withError: invalidInput)
            }
            Self.exit(withError: error)
        }
    }
}
