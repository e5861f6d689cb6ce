/// Small SIMD loops shared by the kernels. Each has a fixed evaluation order (8 or 16
/// lanes, then a lane sum), so its result depends only on its inputs.
enum VectorMath {
    /// The sum of 16 lanes, halving the vector each step (inlined, unlike `SIMD.sum()`).
    @inline(__always)
    static func total(_ v: SIMD16<Float>) -> Float {
        let eight = v.lowHalf + v.highHalf, four = eight.lowHalf + eight.highHalf, two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    /// The sum of 8 lanes, halving the vector each step.
    @inline(__always)
    static func total(_ v: SIMD8<Double>) -> Double {
        let four = v.lowHalf + v.highHalf, two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    /// Σ x_j² in float32 (screening only).
    @inline(__always)
    static func squaredNorm(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var j = 0
        while j + 16 <= n {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
            acc += v * v
            j += 16
        }
        var sum = total(acc)
        while j < n { sum += x[j] * x[j]; j += 1 }
        return sum
    }

    /// Σ (x_j − c_j)² in float64.
    @inline(__always)
    static func squaredDistance(_ x: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ n: Int) -> Double {
        var acc = SIMD8<Double>()
        var j = 0
        while j + 8 <= n {
            let r = SIMD8<Double>(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self))
                - SIMD8<Double>(UnsafeRawPointer(c + j).loadUnaligned(as: SIMD8<Float>.self))
            acc += r * r
            j += 8
        }
        var sum = total(acc)
        while j < n { let r = Double(x[j]) - Double(c[j]); sum += r * r; j += 1 }
        return sum
    }

    /// Σ (x_j − μ_j)² · p_j in float64 (a Mahalanobis term with diagonal precision p).
    @inline(__always)
    static func weightedSquaredDistance(_ x: UnsafePointer<Float>, _ mean: UnsafePointer<Double>,
                                        _ precision: UnsafePointer<Double>, _ n: Int) -> Double {
        var acc = SIMD8<Double>()
        var j = 0
        while j + 8 <= n {
            let r = SIMD8<Double>(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self))
                - UnsafeRawPointer(mean + j).loadUnaligned(as: SIMD8<Double>.self)
            acc += r * r * UnsafeRawPointer(precision + j).loadUnaligned(as: SIMD8<Double>.self)
            j += 8
        }
        var sum = total(acc)
        while j < n { let r = Double(x[j]) - mean[j]; sum += r * r * precision[j]; j += 1 }
        return sum
    }

    /// first += w·x and second += w·x², in float64.
    @inline(__always)
    static func accumulateMoments(_ x: UnsafePointer<Float>, weight w: Double,
                                  first: UnsafeMutablePointer<Double>, second: UnsafeMutablePointer<Double>,
                                  _ n: Int) {
        let weight = SIMD8<Double>(repeating: w)
        var j = 0
        while j + 8 <= n {
            let v = SIMD8<Double>(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self))
            let wv = weight * v
            let f = UnsafeMutableRawPointer(first + j)
            f.storeBytes(of: f.loadUnaligned(as: SIMD8<Double>.self) + wv, as: SIMD8<Double>.self)
            let s = UnsafeMutableRawPointer(second + j)
            s.storeBytes(of: s.loadUnaligned(as: SIMD8<Double>.self) + wv * v, as: SIMD8<Double>.self)
            j += 8
        }
        while j < n {
            let v = Double(x[j])
            first[j] += w * v
            second[j] += w * v * v
            j += 1
        }
    }

    /// The smallest x[j] + y[j] over n ≥ 1 values.
    @inline(__always)
    static func minimum(of x: UnsafePointer<Float>, plus y: UnsafePointer<Float>, _ n: Int) -> Float {
        var best = SIMD16<Float>(repeating: .infinity)
        var j = 0
        while j + 16 <= n {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
                + UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self)
            best.replace(with: v, where: v .< best)
            j += 16
        }
        var eight = best.lowHalf, four: SIMD4<Float>
        eight.replace(with: best.highHalf, where: best.highHalf .< eight)
        four = eight.lowHalf
        four.replace(with: eight.highHalf, where: eight.highHalf .< four)
        var result = Swift.min(Swift.min(four[0], four[1]), Swift.min(four[2], four[3]))
        while j < n { result = Swift.min(result, x[j] + y[j]); j += 1 }
        return result
    }

    /// The largest of n ≥ 1 values.
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var best = SIMD16<Float>(repeating: -.infinity)
        var j = 0
        while j + 16 <= n {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
            best.replace(with: v, where: v .> best)
            j += 16
        }
        var eight = best.lowHalf, four: SIMD4<Float>
        eight.replace(with: best.highHalf, where: best.highHalf .> eight)
        four = eight.lowHalf
        four.replace(with: eight.highHalf, where: eight.highHalf .> four)
        var result = Swift.max(Swift.max(four[0], four[1]), Swift.max(four[2], four[3]))
        while j < n { result = Swift.max(result, x[j]); j += 1 }
        return result
    }

    /// Calls `body(j)`, in increasing j, for every x[j] + y[j] ≤ limit. Checks 16 values at a
    /// time, so the usual case of one or two hits costs little more than the comparisons.
    @inline(__always)
    static func forEach(in x: UnsafePointer<Float>, plus y: UnsafePointer<Float>, _ n: Int, atMost limit: Float,
                        _ body: (Int) -> Void) {
        let bound = SIMD16<Float>(repeating: limit)
        var j = 0
        while j + 16 <= n {
            let hits = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
                + UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self) .<= bound
            if any(hits) { for lane in 0..<16 where hits[lane] { body(j + lane) } }
            j += 16
        }
        while j < n { if x[j] + y[j] <= limit { body(j) }; j += 1 }
    }
}
