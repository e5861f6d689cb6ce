import Foundation
import Testing
import Descriptors

@Suite struct ShardPlanTests {
    @Test func everyRowIsInExactlyOneShard() {
        for (total, shard) in [(0, 1), (1, 1), (10, 3), (12, 4), (3, 65_536)] {
            let plan = ShardPlan(totalRows: total, shardRows: shard)
            let rows = (0..<plan.count).flatMap { Array(plan.rows(of: $0)) }
            #expect(rows == Array(0..<total), "\(total) rows in shards of \(shard)")
        }
    }

    /// Shards of up to `Int.max` rows, over up to `Int.max` rows: the count and the last
    /// shard's end used to overflow (a "Range requires lowerBound <= upperBound" crash of the
    /// coordinator on a SUBMIT with `shardRows` 2^63 − 1).
    @Test func shardsOfAnyPositiveSizeDoNotOverflow() {
        let one = ShardPlan(totalRows: 3, shardRows: .max)
        #expect(one.count == 1 && one.rows(of: 0) == 0..<3)
        let two = ShardPlan(totalRows: .max, shardRows: .max - 1)
        #expect(two.count == 2 && two.rows(of: 1) == (Int.max - 1)..<Int.max)
        let many = ShardPlan(totalRows: .max, shardRows: 2)
        #expect(many.count == Int.max / 2 + 1 && many.rows(of: many.count - 1) == (Int.max - 1)..<Int.max)
        let exact = ShardPlan(totalRows: .max, shardRows: .max)
        #expect(exact.count == 1 && exact.rows(of: 0) == 0..<Int.max)
    }

    @Test func aDecodedPlanIsChecked() throws {
        let decoder = JSONDecoder()
        let plan = try decoder.decode(ShardPlan.self, from: Data(#"{"totalRows":3,"shardRows":9223372036854775807}"#.utf8))
        #expect(plan.count == 1)
        for json in [#"{"totalRows":3,"shardRows":0}"#, #"{"totalRows":3,"shardRows":-5}"#, #"{"totalRows":-1,"shardRows":2}"#] {
            #expect(throws: DecodingError.self, "\(json)") { try decoder.decode(ShardPlan.self, from: Data(json.utf8)) }
        }
    }
}
