import ArgumentParser
import Clustering
import Cluster
import ClusterProtocol

/// A closed set of words an option takes, spelled as the option takes them.
protocol OptionChoice: CaseIterable, RawRepresentable<String>, Equatable, ExpressibleByArgument {
    /// What the words name, for errors ("initialisation", "format").
    static var choiceName: String { get }
}

extension OptionChoice {
    /// `argument` as one of `choices` (all by default); throws naming them for any other word.
    static func parse(_ argument: String, among choices: [Self] = Array(allCases)) throws -> Self {
        guard let choice = Self(rawValue: argument), choices.contains(choice) else {
            throw ValidationError("unknown \(choiceName) '\(argument)' (expected one of \(words(choices)))")
        }
        return choice
    }

    /// The words of `choices`, for help and errors.
    static func words(_ choices: [Self]) -> String { choices.map(\.rawValue).joined(separator: ", ") }
}

/// `--init`, spelled as on the wire.
extension TrainingJob.InitializationMethod: ExpressibleByArgument, OptionChoice {
    static let choiceName = "initialisation"
}

/// `train kmeans --init`: a method, or a K×D .npy file of centres.
enum KMeansStart: ExpressibleByArgument, Equatable {
    case method(TrainingJob.InitializationMethod)
    case centres(path: String)

    /// The methods a k-means job takes by name.
    static let methods: [TrainingJob.InitializationMethod] = [.random, .kmeansPlusPlus, .kmeansParallel]

    /// A method's name, or a file: a name ending in `.npy` or containing `/`. Throws naming
    /// the choices for any other word, so that a typo is not taken for a missing file.
    init(parsing argument: String) throws {
        if let method = TrainingJob.InitializationMethod(rawValue: argument), Self.methods.contains(method) {
            self = .method(method)
        } else if argument.hasSuffix(".npy") || argument.contains("/") {
            self = .centres(path: argument)
        } else {
            throw ValidationError("unknown initialisation '\(argument)' (expected one of "
                                  + "\(TrainingJob.InitializationMethod.words(Self.methods)), or a .npy file of centres)")
        }
    }

    init?(argument: String) { try? self.init(parsing: argument) }

    /// Without `--init`: k-means‖ from `KMeansParallel.preferredFromK`, k-means++ below.
    static func preferred(k: Int) -> KMeansStart {
        .method(k >= KMeansParallel.preferredFromK ? .kmeansParallel : .kmeansPlusPlus)
    }

    var defaultValueDescription: String {
        switch self {
        case .method(let method): method.rawValue
        case .centres(let path): path
        }
    }

    /// The job's initialisation.
    var jobMethod: TrainingJob.InitializationMethod {
        switch self {
        case .method(let method): method
        case .centres: .given
        }
    }
}

/// `get --format`.
enum VectorFormat: String, OptionChoice {
    case text, json, npy
    static let choiceName = "format"
}

/// `search --format`.
enum ResultsFormat: String, OptionChoice {
    case text, json, tsv
    static let choiceName = "format"
}
