import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Foundation

@main
enum Entry {
    static func main() async {
        OpenBLASKernels.reexecuteWithBetterKernelsIfNeeded()
        var command: any ParsableCommand
        do {
            command = try CodebookCommand.parseAsRoot()
        } catch {
            CodebookCommand.exit(withError: error)
        }
        do {
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            let failure = CommandFailure(error) ?? CommandFailure(usage: error, of: type(of: command))
            guard let failure else { CodebookCommand.exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(failure.text)\n".utf8))
            exit(failure.exitCode)
        }
    }
}

extension CodebookCommand {
    /// The names that lead from `codebook` to `command` (`["train", "kmeans"]`), or nil if
    /// it is not one of its subcommands.
    static func path(to command: any ParsableCommand.Type, from parent: any ParsableCommand.Type = CodebookCommand.self) -> [String]? {
        for subcommand in parent.configuration.subcommands {
            if subcommand == command { return [subcommand._commandName] }
            if let rest = path(to: command, from: subcommand) { return [subcommand._commandName] + rest }
        }
        return nil
    }
}

struct CodebookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codebook",
        abstract: "Train visual vocabularies (k-means, diagonal GMM) and encode images as VLAD or Fisher vectors.",
        version: CodebookVersion.description,
        subcommands: [DemoCommand.self, GenerateCommand.self, ExtractCommand.self, TrainCommand.self, EncodeCommand.self,
                      CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, ProgressCommand.self, KeysCommand.self, CancelCommand.self,
                      GetCommand.self, ListCommand.self, SearchCommand.self, ModelsCommand.self, ExportCommand.self, ImportCommand.self,
                      TransformSetCommand.self])
}

/// Prints a progress line and flushes it, so it shows at once even in a pipe or a log file.
func progressLine(_ text: String) {
    print(text)
    fflush(nil)
}

/// Options every compute command takes.
struct ComputeOptions: ParsableArguments {
    @Option(name: .customLong("threads"), help: "Threads to compute with (default: one per core).")
    var requestedThreads: Int?
    var threads: Int { requestedThreads ?? ProcessInfo.processInfo.activeProcessorCount }

    func validate() throws { try validateThreads(threads) }
}

/// Checks a `--threads` value: 1…`WorkerSettings.maximumThreads`.
func validateThreads(_ threads: Int) throws {
    guard (1...WorkerSettings.maximumThreads).contains(threads) else {
        throw ValidationError("--threads must be 1…\(WorkerSettings.maximumThreads) (got \(threads))")
    }
}
