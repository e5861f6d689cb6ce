import ArgumentParser
import Cluster
import ClusterProtocol
import Storage

/// How the command line reports a library error: its exit code and the line it prints,
/// with the flag that helps where there is one. The libraries' messages name no flags;
/// this is where codes become flags and exit codes.
///
///     exit code  when
///     1          any error (not found, already exists, refused, failed…)
///     2          the coordinator did not answer in time, or refused the handshake
///     64         the command line itself is wrong (ArgumentParser's validation errors)
struct CommandFailure {
    var exitCode: Int32
    var text: String

    /// The report for `error`, or nil for an error ArgumentParser reports itself.
    init?(_ error: any Error) {
        switch error {
        case let error as ClusterError where error.code == .unanswered:
            self.init(exitCode: 2, text: error.message)
        case let error as ClusterError where error.code == .notFound:
            self.init(exitCode: 1, text: "not found: \(error.message)")
        case let error as StoreError where error.code == .notFound:
            self.init(exitCode: 1, text: "not found: \(error.message)")
        case let error as ClusterError where error.code == .exists:
            self.init(exitCode: 1, text: error.message + Self.replaceHint)
        case let error as StoreError where error.code == .exists:
            self.init(exitCode: 1, text: error.message + Self.replaceHint)
        default:
            return nil
        }
    }

    /// The report for a `ValidationError` that `command` threw while it ran (after parsing):
    /// the message and where its options are, rather than ArgumentParser's usage line of
    /// `codebook` itself, which reads as if the subcommand were wrong. Nil for other errors.
    init?(usage error: any Error, of command: any ParsableCommand.Type) {
        guard let error = error as? ValidationError else { return nil }
        let name = (CodebookCommand.path(to: command).map { ["codebook"] + $0 } ?? ["codebook"]).joined(separator: " ")
        self.init(exitCode: ExitCode.validationFailure.rawValue, text: "\(error.message)\nSee '\(name) --help' for its options.")
    }

    init(exitCode: Int32, text: String) {
        self.exitCode = exitCode
        self.text = text
    }

    /// The hint for an existing model or set.
    private static let replaceHint = "; pass --replace to overwrite it"
}
