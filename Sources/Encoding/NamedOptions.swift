/// Encoding options with a name for each single flag: the one definition of the names a
/// set's record lists ("squareRoot", …; Protocols/storage.md).
public protocol NamedOptions: OptionSet, Sendable where RawValue == Int, Element == Self {
    /// Every single option and its name, in flag order.
    static var named: [(name: String, option: Self)] { get }
}

extension NamedOptions {
    /// The names of the options set here, in flag order; flags without a name are left out.
    public var names: [String] { Self.named.filter { contains($0.option) }.map(\.name) }
}
