/// Small SIMD loops shared by the kernels. Each has a fixed evaluation order (8 or 16
/// lanes, then a lane sum), so its result depends only on its inputs.
enum VectorMath {
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
        var sum = acc.sum()
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
        var sum = acc.sum()
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
        var sum = acc.sum()
        while j < n { let r = Double(x[j]) - mean[j]; sum += r * r * precision[j]; j += 1 }
        return sum
    }

    /// sum += x and returns Σ (x_j − c_j)², all in float64.
    @inline(__always)
    static func accumulate(_ x: UnsafePointer<Float>, residualTo c: UnsafePointer<Float>,
                           into sum: UnsafeMutablePointer<Double>, _ n: Int) -> Double {
        var acc = SIMD8<Double>()
        var j = 0
        while j + 8 <= n {
            let v = SIMD8<Double>(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self))
            let s = UnsafeMutableRawPointer(sum + j)
            s.storeBytes(of: s.loadUnaligned(as: SIMD8<Double>.self) + v, as: SIMD8<Double>.self)
            let r = v - SIMD8<Double>(UnsafeRawPointer(c + j).loadUnaligned(as: SIMD8<Float>.self))
            acc += r * r
            j += 8
        }
        var total = acc.sum()
        while j < n {
            let v = Double(x[j])
            sum[j] += v
            let r = v - Double(c[j])
            total += r * r
            j += 1
        }
        return total
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

    /// The smallest of n ≥ 1 values.
    @inline(__always)
    static func minimum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0
        var result = Float.infinity
        if n >= 16 {
            var acc = UnsafeRawPointer(x).loadUnaligned(as: SIMD16<Float>.self)
            j = 16
            while j + 16 <= n {
                acc = pointwiseMin(acc, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self))
                j += 16
            }
            result = acc.min()
        }
        while j < n { result = Swift.min(result, x[j]); j += 1 }
        return result
    }

    /// The largest of n ≥ 1 values.
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0
        var result = -Float.infinity
        if n >= 16 {
            var acc = UnsafeRawPointer(x).loadUnaligned(as: SIMD16<Float>.self)
            j = 16
            while j + 16 <= n {
                acc = pointwiseMax(acc, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self))
                j += 16
            }
            result = acc.max()
        }
        while j < n { result = Swift.max(result, x[j]); j += 1 }
        return result
    }

    /// x[j] += y[j] for float32 arrays (used to add a per-column constant to a row).
    @inline(__always)
    static func add(_ y: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, _ n: Int) {
        var j = 0
        while j + 16 <= n {
            let r = UnsafeMutableRawPointer(x + j)
            r.storeBytes(of: r.loadUnaligned(as: SIMD16<Float>.self) + UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self),
                         as: SIMD16<Float>.self)
            j += 16
        }
        while j < n { x[j] += y[j]; j += 1 }
    }
}
