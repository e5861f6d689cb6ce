import Descriptors

/// A shard computation that sees every row transformed as it is read (RootSIFT): the
/// transform is applied block by block where rows are converted to float32, so no
/// transformed copy of the corpus is ever written.
public struct TransformedComputation<Base: ShardComputation>: ShardComputation {
    public let base: Base
    public let transform: DescriptorTransform

    public init(_ base: Base, transform: DescriptorTransform) {
        self.base = base
        self.transform = transform
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> Base.Statistics {
        try base.statistics(of: rows.transformed(transform), shard: index, workspace: workspace)
    }

    public func reserveMergeCapacity(in first: inout Base.Statistics) { base.reserveMergeCapacity(in: &first) }
}

/// A backend whose every computation sees the corpus transformed (see `TransformedComputation`).
public struct TransformingBackend<Base: StatisticsBackend>: StatisticsBackend {
    public let base: Base
    public let transform: DescriptorTransform

    public init(_ base: Base, transform: DescriptorTransform) {
        self.base = base
        self.transform = transform
    }

    public var rows: Int { base.rows }
    public var dimension: Int { base.dimension }
    public var plan: ShardPlan { base.plan }

    public func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        try await base.run(TransformedComputation(computation, transform: transform))
    }
}
