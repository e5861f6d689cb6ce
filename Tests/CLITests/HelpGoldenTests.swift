import ArgumentParser
import Foundation
import Testing
@testable import codebook

/// The `--help` of every command and subcommand, compared with its golden file in
/// Tests/CLITests/Goldens, so that a change of the interface is a visible diff.
/// Regenerate the goldens (and remove those of commands that are gone) with:
///
///     CODEBOOK_UPDATE_GOLDENS=1 swift test --filter HelpGolden
@Suite struct HelpGoldenTests {
    static let goldens = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Goldens")
    /// A fixed width: help is wrapped to it whatever the terminal.
    static let columns = 100

    /// Every command under `command`, itself first, with its path of names.
    static func commands(under command: any ParsableCommand.Type, path: [String] = []) -> [([String], any ParsableCommand.Type)] {
        let path = path + [command._commandName]
        return [(path, command)] + command.configuration.subcommands.flatMap { commands(under: $0, path: path) }
    }

    @Test func everyCommandsHelpMatchesItsGolden() throws {
        let update = ProcessInfo.processInfo.environment["CODEBOOK_UPDATE_GOLDENS"] == "1"
        let commands = Self.commands(under: CodebookCommand.self)
        #expect(commands.count > 20, "\(commands.map(\.0))")
        var names: Set<String> = []
        for (path, command) in commands {
            let name = path.joined(separator: "-") + ".txt"
            names.insert(name)
            let help = CodebookCommand.helpMessage(for: command, columns: Self.columns) + "\n"
            let file = Self.goldens.appendingPathComponent(name)
            if update {
                try help.write(to: file, atomically: true, encoding: .utf8)
            } else {
                let golden = try? String(contentsOf: file, encoding: .utf8)
                #expect(help == golden, """
                    \(path.joined(separator: " ")) --help differs from Goldens/\(name); if the change is meant, \
                    regenerate: CODEBOOK_UPDATE_GOLDENS=1 swift test --filter HelpGolden
                    """)
            }
        }
        for stale in try FileManager.default.contentsOfDirectory(atPath: Self.goldens.path) where !names.contains(stale) {
            if update {
                try FileManager.default.removeItem(at: Self.goldens.appendingPathComponent(stale))
            } else {
                Issue.record("Goldens/\(stale) is the golden of no command; regenerate: CODEBOOK_UPDATE_GOLDENS=1 swift test --filter HelpGolden")
            }
        }
    }

    @Test func versionComesFromOnePlace() throws {
        let outcome = try CommandRunner.run(["--version"], timeout: 60)
        #expect(outcome.status == 0 && outcome.output == CodebookVersion.description + "\n", "\(outcome.output)\(outcome.error)")
        #expect(outcome.output.hasPrefix("codebook \(CodebookVersion.current) (cluster protocol 1, store format 1, libzmq "))
    }
}
