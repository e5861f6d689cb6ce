import Testing
import Search

@Suite struct AveragePrecisionTests {
    /// By hand, with Holidays' trapezoids: the i-th true positive at rank r adds
    /// (i/r + (i+1)/(r+1)) / 2 / P (i/r = 1 when r = 0).
    @Test func trapezoidsOfHandComputedRankings() {
        // Both at the top: (1 + 1)/2/2 + (1 + 1)/2/2 = 1.
        #expect(AveragePrecision.holidays(ranks: [0, 1], relevantCount: 2) == 1)
        // One, second: (0/1 + 1/2)/2 = 0.25 (the non-interpolated AP would say 0.5).
        #expect(AveragePrecision.holidays(ranks: [1], relevantCount: 1) == 0.25)
        // Ranks 0 and 2 of 2: 0.5 + (1/2 + 2/3)/2/2 = 0.5 + 7/24.
        #expect(abs(AveragePrecision.holidays(ranks: [0, 2], relevantCount: 2) - (0.5 + 7.0 / 24)) < 1e-12)
        // Ranks 1 and 3 of 3 relevant (one never found): (0 + 1/2)/2/3 + (1/3 + 2/4)/2/3 = 1/12 + 5/36.
        #expect(abs(AveragePrecision.holidays(ranks: [1, 3], relevantCount: 3) - (1.0 / 12 + 5.0 / 36)) < 1e-12)
        #expect(AveragePrecision.holidays(ranks: [], relevantCount: 2) == 0)
        #expect(AveragePrecision.holidays(ranks: [], relevantCount: 0) == 0)
    }

    /// The query is removed from its own ranking: the images after it move up one rank.
    @Test func theQueryIsExcluded() {
        // q first: a, b at ranks 0 and 2 once q is removed.
        #expect(abs(AveragePrecision.holidays(ranking: ["q", "a", "x", "b"], query: "q", relevant: ["a", "b"]) - (0.5 + 7.0 / 24)) < 1e-12)
        // q between: a at rank 1 after the shift, as if q were not there.
        #expect(AveragePrecision.holidays(ranking: ["x", "q", "a"], query: "q", relevant: ["a"]) == 0.25)
        // Not shifted before the query: a at rank 0.
        #expect(AveragePrecision.holidays(ranking: ["a", "q", "x"], query: "q", relevant: ["a"]) == 1)
        // The query in its relevant set counts neither as found nor as relevant.
        #expect(AveragePrecision.holidays(ranking: ["q", "x", "a"], query: "q", relevant: ["q", "a"]) == 0.25)
        // Every relevant image first: AP 1 wherever the query ranks.
        #expect(AveragePrecision.holidays(ranking: ["a", "b", "q"], query: "q", relevant: ["a", "b"]) == 1)
    }
}
