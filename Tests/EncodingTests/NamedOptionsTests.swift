import Encoding
import Testing

/// The option names a set's record lists come from one table per option set.
@Suite struct NamedOptionsTests {
    @Test func vladNamesFollowTheFlagOrder() {
        #expect(VLADOptions(rawValue: 0xF).names == ["normalizeComponents", "squareRoot", "unnormalized", "normalizeMass"])
        #expect(VLADOptions([.normalizeMass, .squareRoot]).names == ["squareRoot", "normalizeMass"])
        #expect(VLADOptions().names == [])
    }

    @Test func fisherNamesLeaveOutTheCompositeAndUnknownFlags() {
        #expect(FisherOptions.improved.names == ["squareRoot", "normalized"])
        #expect(FisherOptions(rawValue: 0x4 | 0x40).names == ["fast"])
    }

    /// Each named option is one flag of its own, so a set's flags and its names say the same.
    @Test func everyNameIsOneDistinctFlag() {
        func check<Options: NamedOptions>(_: Options.Type) {
            let flags = Options.named.map(\.option.rawValue)
            #expect(flags.allSatisfy { $0 > 0 && $0 & ($0 - 1) == 0 })
            #expect(Set(flags).count == flags.count)
            #expect(Set(Options.named.map(\.name)).count == flags.count)
            for (name, option) in Options.named { #expect(option.names == [name]) }
        }
        check(VLADOptions.self)
        check(FisherOptions.self)
    }
}
