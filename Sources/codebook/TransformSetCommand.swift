import ArgumentParser
import Cluster
import ClusterProtocol

struct TransformSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transform-set",
        abstract: "Store a set's vectors projected by a PCA (e.g. the whitening of train pca --set) in a new set, without encoding again.",
        discussion: "Each vector goes through the PCA as encode --whiten-with puts it (power law, L2, projection, whitening, L2), "
            + "to the same bits. The new set must not exist; it gets its record once every vector is in. With a coordinator it runs as a job "
            + "(listed by status, followed by progress, stopped by cancel); a job that fails or is cancelled leaves no set, and one a "
            + "stopped coordinator was running starts again when the coordinator does.")

    @Argument(help: "The set whose vectors are projected.") var set: String
    @Option(help: ArgumentHelp("The stored PCA model (its input dimension is the set's).", valueName: "NAME")) var pca: String
    @Option(help: ArgumentHelp("The new set.", valueName: "NEWSET")) var into: String
    @OptionGroup var access: StoreWriteOptions

    func run() throws {
        let record = try access.requester(timeout: .seconds(3600)).transformSet(TransformSetRequest(set: set, pca: pca, into: into))
        print("stored set \(into): the vectors of set \(set) through PCA model \(pca), \(record.dimension) values each")
    }
}
