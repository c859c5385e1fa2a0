import ArgumentParser
import SSSonectorCore

/// `sssonector validate FILE...`: parses, loads every plugin, creates and destroys every
/// stage; opens no socket. Prints `ok` or every error.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check pipeline files and their plugins without opening sockets; print ok or every error.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Pipeline files (JSON).")
    var files: [String]

    func run() throws {
        let logger = global.makeLogger()
        let errors = Host.validate(files: files, threads: global.threads, logger: logger, dataPath: global.dataPath)
        guard errors.isEmpty else {
            errors.forEach(printError)
            throw SSSonectorCommand.invalidInput
        }
        print("ok")
    }
}
