import Foundation
import Testing

/// Options that take a closed set of words refuse any other word, naming the set; a typo in
/// `--init` used to be read as a file name and reported as a missing file.
@Suite struct OptionChoiceTests {
    @Test func aWordOutsideTheSetIsRefusedNamingTheSet() throws {
        let cases: [([String], String)] = [
            (["train", "kmeans", "--corpus", "c.npy", "--k", "2", "--out", "o.npy", "--init", "kmeans+"],
             "unknown initialisation 'kmeans+' (expected one of random, kmeans++, kmeans||, or a .npy file of centres)"),
            (["train", "gmm", "--corpus", "c.npy", "--k", "2", "--out", "o", "--init", "kmeans++"],
             "unknown initialisation 'kmeans++' (expected one of kmeans, kmeans||, random)"),
            (["get", "S/a", "--format", "xml"], "unknown format 'xml' (expected one of text, json, npy)"),
            (["search", "S", "--key", "a", "--format", "csv"], "unknown format 'csv' (expected one of text, json, tsv)"),
        ]
        for (arguments, message) in cases {
            let outcome = try CommandRunner.run(arguments, timeout: 60)
            #expect(outcome.status == 64 && outcome.error.contains(message), "\(arguments): \(outcome.error)")
        }
    }
}
