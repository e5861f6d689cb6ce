import Descriptors

/// A mapping every row goes through as a computation reads it: a descriptor transform
/// (RootSIFT) or a PCA projection. Rows are mapped a shard at a time, where they are read,
/// so no mapped copy of the corpus is ever written.
public protocol RowMapping: Sendable {
    /// `rows` mapped, keeping their row numbers and source for error messages.
    func map(_ rows: DescriptorMatrix, workspace: KernelWorkspace) throws -> DescriptorMatrix
    /// The values of a mapped row, for input rows of `dimension` values.
    func outputDimension(forInput dimension: Int) -> Int
}

extension DescriptorTransform: RowMapping {
    /// The rows transformed block by block where they are converted to float32 (a view, no copy).
    public func map(_ rows: DescriptorMatrix, workspace: KernelWorkspace) -> DescriptorMatrix { rows.transformed(self) }
    public func outputDimension(forInput dimension: Int) -> Int { dimension }
}

extension PCAProjection: RowMapping {
    /// The shard's rows projected into memory (see `project(_:workspace:)`).
    public func map(_ rows: DescriptorMatrix, workspace: KernelWorkspace) throws -> DescriptorMatrix {
        try project(rows, workspace: workspace)
    }
    public func outputDimension(forInput dimension: Int) -> Int { outputDimension }
}

/// A shard computation that sees every row mapped as it is read.
public struct MappedComputation<Base: ShardComputation, Mapping: RowMapping>: ShardComputation {
    public let base: Base
    public let mapping: Mapping

    public init(_ base: Base, mapping: Mapping) {
        self.base = base
        self.mapping = mapping
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> Base.Statistics {
        try base.statistics(of: mapping.map(rows, workspace: workspace), shard: index, workspace: workspace)
    }

    public func reserveMergeCapacity(in first: inout Base.Statistics) { base.reserveMergeCapacity(in: &first) }
}

/// A backend whose every computation sees the corpus mapped (see `MappedComputation`); its
/// dimension is the mapped rows'.
public struct MappingBackend<Base: StatisticsBackend, Mapping: RowMapping>: StatisticsBackend {
    public let base: Base
    public let mapping: Mapping

    public init(_ base: Base, mapping: Mapping) {
        self.base = base
        self.mapping = mapping
    }

    public var rows: Int { base.rows }
    public var dimension: Int { mapping.outputDimension(forInput: base.dimension) }
    public var plan: ShardPlan { base.plan }

    public func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        try await base.run(MappedComputation(computation, mapping: mapping))
    }
}

/// A computation on rows read through a descriptor transform (RootSIFT).
public typealias TransformedComputation<Base: ShardComputation> = MappedComputation<Base, DescriptorTransform>
/// A backend whose rows are read through a descriptor transform.
public typealias TransformingBackend<Base: StatisticsBackend> = MappingBackend<Base, DescriptorTransform>
/// A computation on rows projected by a PCA.
public typealias ProjectedComputation<Base: ShardComputation> = MappedComputation<Base, PCAProjection>
/// A backend whose rows are projected by a PCA; its dimension is the projection's D'.
public typealias ProjectingBackend<Base: StatisticsBackend> = MappingBackend<Base, PCAProjection>

extension MappedComputation where Mapping == DescriptorTransform {
    public init(_ base: Base, transform: DescriptorTransform) { self.init(base, mapping: transform) }
}

extension MappedComputation where Mapping == PCAProjection {
    public init(_ base: Base, projection: PCAProjection) { self.init(base, mapping: projection) }
}

extension MappingBackend where Mapping == DescriptorTransform {
    public init(_ base: Base, transform: DescriptorTransform) { self.init(base, mapping: transform) }
}

extension MappingBackend where Mapping == PCAProjection {
    public init(_ base: Base, projection: PCAProjection) { self.init(base, mapping: projection) }
}
