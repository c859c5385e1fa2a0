import Foundation

/// Writes one line to standard error (errors and problems; stdout carries results).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The process's working directory, against which command-line paths resolve.
func currentDirectory() -> String { FileManager.default.currentDirectoryPath }
