import ArgumentParser
import Foundation
import SSSonectorCore

/// `sssonector plugin new NAME --lang swift|c [--out DIR] [--sdk DIR | --sdk-url URL]`: writes a
/// ready stage project outside this repository from `Plugins/templates/<lang>/`.
struct PluginNew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Write a ready stage project: the stage, its build file, a pipeline, a test and a README.")

    @Argument(help: "The stage's name: lowercase letters, digits and _, starting with a letter (the library is lib<NAME>.so).")
    var name: String

    @Option(help: "swift or c.")
    var lang: String

    @Option(help: "The folder to create the project in (default: the current folder); the project is <out>/<NAME>.")
    var out: String?

    @Option(help: "The SSSonector source tree to build against (default: the one this binary was built from).")
    var sdk: String?

    @Option(help: "Name SSSonector by this git URL instead of a path (Swift projects).")
    var sdkURL: String?

    func validate() throws {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first),
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }),
              name.count <= 64
        else { throw ValidationError("NAME: expected lowercase letters, digits and _, starting with a letter, found \(name.quotedForMessage())") }
        guard ["swift", "c"].contains(lang) else { throw ValidationError("--lang: expected swift or c, found \(lang.quotedForMessage())") }
    }

    func run() throws {
        let root = sdk.map { PluginSearchPath.resolve($0, against: currentDirectory()) } ?? StageScaffold.builtFromSourceTree
        let destination = PluginSearchPath.resolve(out ?? ".", against: currentDirectory()) + "/" + name
        let scaffold = StageScaffold(name: name, language: lang, sdk: root, sdkURL: sdkURL,
                                     sssonector: CommandLine.executablePath)
        do {
            let files = try scaffold.write(to: destination)
            print("wrote \(destination)/ (\(files.joined(separator: ", ")))")
            print(lang == "c" ? "next: cd \(destination) && make && make test"
                              : "next: cd \(destination) && swift build && swift test")
        } catch {
            printError("\(error)")
            throw SSSonectorCommand.invalidInput
        }
    }
}

extension CommandLine {
    /// This executable's absolute path.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
