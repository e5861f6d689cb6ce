import ArgumentParser
import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Exact nearest neighbours in a stored set by inner product (cosine on normalised vectors).")

    @Argument(help: "The set to search.") var set: String
    @Option(help: "Query with the set's own vector of this image key (it finds itself first).") var key: String?
    @Option(help: ArgumentHelp("Query with the vectors in this .npy file (float32, one per row).", valueName: "Q.npy"))
    var vector: String?
    @Option(help: ArgumentHelp("Query with every vector of this stored set.", valueName: "QUERIES_SET")) var queries: String?
    @Option(help: ArgumentHelp("Query with a JPEG or PNG image (in the set or not): its descriptors are extracted here with "
                               + "the extraction options, which must be those `codebook extract` computed the set's descriptors "
                               + "with, and encoded as the set's vectors were (model, options, RootSIFT, PCA, whitening).",
                               valueName: "FILE"))
    var image: String?
    @Option(help: "Neighbours per query (1…\(SearchRequest.maximumTop)).") var top: Int = 10
    @Option(help: ArgumentHelp("Project the queries (--vector, --queries) by this stored PCA model first, e.g. the whitening "
                               + "the set was encoded with (--whiten-with).", valueName: "NAME"))
    var pca: String?
    @Option(help: "text, json or tsv (default: text).", transform: { try .parse($0) }) var format: ResultsFormat = .text
    @Option(help: ArgumentHelp("Show each neighbour's image file: the directory given to `codebook extract --images` "
                               + "(keys: file names without extension).", valueName: "DIR"))
    var images: String?
    @Option(help: ArgumentHelp("Or the list given to `codebook extract --image-list`.", valueName: "FILE"))
    var imageList: String?
    @Flag(inversion: .prefixedNo, help: ArgumentHelp("With --coordinator: search the set in partitions on the workers, or on "
                                                     + "the coordinator alone (default: on the workers when the set is larger "
                                                     + "than the coordinator's search memory)."))
    var split: Bool?
    @OptionGroup(title: "Extraction options (with --image)") var extraction: ExtractionOptions
    @OptionGroup var access: StoreAccessOptions

    func validate() throws {
        guard [key, vector, queries, image].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --key, --vector, --queries and --image")
        }
        guard (1...SearchRequest.maximumTop).contains(top) else { throw ValidationError("--top must be 1…\(SearchRequest.maximumTop)") }
        guard pca == nil || (key == nil && image == nil) else {
            throw ValidationError("--pca projects --vector or --queries; a --key's vector is in the set already, and an --image's is "
                                  + "encoded as the set's were")
        }
        guard images == nil || imageList == nil else { throw ValidationError("give --images or --image-list, not both") }
    }

    /// Each image key's file, from `--images` or `--image-list`; nil without them.
    private func imagePaths() throws -> [String: String]? {
        guard let source = try images.map({ try ImageSource(directory: $0) }) ?? imageList.map({ try ImageSource(list: $0) }) else {
            return nil
        }
        return Dictionary(uniqueKeysWithValues: source.entries.map { ($0.key, $0.path) })
    }

    func run() throws {
        var request = SearchRequest(set: set, top: top, key: key, querySet: queries, pca: pca, split: split)
        var values: [Float] = []
        if let vector {
            let file = try NpyFile.readFloat32(path: vector)
            (request.queries, values) = (file.rows, file.values)
        }
        let paths = try imagePaths()
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        if let image {
            values = try ImageQuery.vector(of: image, for: set, parameters: extraction.parameters, requester: requester)
            request.queries = 1
            // An image of the set encoded here should give its stored vector; if not, the
            // extraction options are likely not the set's, and every score is off.
            if let (imageKey, cosine) = try ImageQuery.agreement(of: values, image: image, set: set, requester: requester),
               cosine < 0.999 {
                FileHandle.standardError.write(Data(("warning: set \"\(PeerText.escaped(set))\" holds image key \"\(PeerText.escaped(imageKey))\", "
                    + "but this image's vector is not the stored one (cosine \(String(format: "%.4f", cosine))): were the set's "
                    + "descriptors extracted with other options (--method, --max-side, --root-sift, …)?\n").utf8))
            }
        }
        let results = try requester.search(request, vectors: values)
        let named = results.enumerated().map { index, result in (result.query ?? image ?? "\(index)", result) }
        // A key the listing does not have gets no path (an empty TSV field).
        func path(_ key: String) -> String? { paths.map { $0[key] ?? "" } }
        switch format {
        case .json:
            struct Hit: Encodable { let key: String; let score: Float; let path: String? }
            struct Output: Encodable { let query: String; let results: [Hit] }
            let output = named.map { query, result in
                Output(query: query, results: zip(result.keys, result.scores).map { Hit(key: $0, score: $1, path: path($0)) })
            }
            print(String(decoding: try JSONEncoder().encode(output), as: UTF8.self))
        case .tsv:
            print("query\trank\tkey\tscore" + (paths == nil ? "" : "\tpath"))
            for (query, result) in named {
                for (rank, (key, score)) in zip(result.keys, result.scores).enumerated() {
                    print("\(PeerText.escaped(query))\t\(rank + 1)\t\(PeerText.escaped(key))\t\(score)"
                          + (path(key).map { "\t\(PeerText.escaped($0))" } ?? ""))
                }
            }
        case .text:
            for (query, result) in named {
                print("query \(PeerText.escaped(query)):")
                for (rank, (key, score)) in zip(result.keys, result.scores).enumerated() {
                    print("  \(rank + 1)  \(score)  \(PeerText.escaped(key))" + (path(key).flatMap { $0.isEmpty ? nil : "  \(PeerText.escaped($0))" } ?? ""))
                }
            }
        }
    }
}
