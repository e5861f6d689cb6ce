import ClusterProtocol

/// An encode pass's shards are ranges of its list of images; each task names its images
/// and reads them from the whole descriptor file.
struct ImageShards: ShardLayout {
    let images: [ImageSlice]
    /// The descriptor file's rows.
    let rows: Int

    func place(_ assignment: inout TaskAssignment, items: Range<Int>) {
        assignment.images = Array(images[items])
        assignment.firstRow = 0
        assignment.rowCount = rows
    }
}
