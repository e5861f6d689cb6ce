import CVLFeat
import Descriptors
import Synchronization

/// Where a descriptor was computed: VLFeat's frame, in pixels of the (downscaled) image,
/// 0-based. SIFT: centre, scale σ and orientation (radians); dense SIFT: centre, bin size
/// as `scale` and orientation 0.
public struct SIFTFrame: Sendable, Equatable {
    public var x: Float
    public var y: Float
    public var scale: Float
    public var orientation: Float
}

/// What `FeatureExtractor` computes.
public enum ExtractionMethod: Sendable, Equatable {
    /// VLFeat's SIFT detector and descriptor, as the `sift` command-line tool and
    /// `vl_sift` run them: octaves as many as fit, 3 levels per octave, first octave 0, peak
    /// threshold 0, edge threshold 10, and one descriptor per orientation of each keypoint
    /// (`vl_sift_calc_keypoint_orientations`, up to 4). The image is given to VLFeat in the
    /// 0–255 range of those tools.
    case sift
    /// VLFeat's dense SIFT as `vl_phow` runs it for one bin size: the image (in [0, 1], as
    /// `vl_phow` expects) smoothed by a Gaussian of σ = binSize / 6 (`vl_imsmooth`, phow's
    /// magnification 6), then `vl_dsift` with the flat window ("fast"), a window size of 1.5
    /// bins, a grid of `step` pixels over the whole image, and descriptors whose contrast
    /// (the norm `vl_dsift` reports) is below 0.005 set to zero.
    case denseSIFT(step: Int, binSize: Int)
}

/// Images → SIFT descriptors with VLFeat. Descriptors are VLFeat's float values × 512,
/// capped at 255 (what `vl_sift` and `vl_dsift` return with `FloatDescriptors`, and the
/// command-line tool before it truncates to bytes): the familiar 0–255 range, unrounded.
public struct FeatureExtractor: Sendable {
    /// Values per descriptor.
    public static let dimension = 128
    /// Dense SIFT's accepted grid steps and bin sizes (pixels).
    public static let steps = 1...1024, binSizes = 1...256
    /// `vl_phow`'s defaults: magnification, window size (in bins), contrast threshold.
    static let phowMagnification = 6.0, phowWindowSize = 1.5, phowContrastThreshold = 0.005
    /// Images with a side shorter than this give no descriptors (VLFeat needs a few pixels
    /// per octave and per bin).
    public static let minimumSide = 16

    public var method: ExtractionMethod
    /// Shrink images whose longer side exceeds this first (`GreyImage.downscaled`); nil: never.
    public var maximumSide: Int?
    /// Apply RootSIFT (`DescriptorTransform.rootSIFT`) to every descriptor.
    public var rootSIFT: Bool

    /// Throws `FeatureError.invalidArgument` for a dense SIFT step or bin size outside `steps` and
    /// `binSizes`, or a maximum side under `minimumSide`.
    public init(method: ExtractionMethod = .sift, maximumSide: Int? = nil, rootSIFT: Bool = false) throws {
        if case .denseSIFT(let step, let binSize) = method, !Self.steps.contains(step) || !Self.binSizes.contains(binSize) {
            throw FeatureError(.invalidArgument, "dense SIFT step \(step) or bin size \(binSize) is outside "
                               + "\(Self.steps) and \(Self.binSizes)")
        }
        if let maximumSide, maximumSide < Self.minimumSide {
            throw FeatureError(.invalidArgument, "a maximum side of \(maximumSide) is under \(Self.minimumSide) pixels")
        }
        self.method = method
        self.maximumSide = maximumSide
        self.rootSIFT = rootSIFT
    }

    /// The descriptors (row-major, 128 per frame) and frames of `image`.
    public func extract(_ image: GreyImage) -> (descriptors: [Float], frames: [SIFTFrame]) {
        let image = maximumSide.map { image.downscaled(maxSide: $0) } ?? image
        guard image.width >= Self.minimumSide, image.height >= Self.minimumSide else { return ([], []) }
        var result = switch method {
        case .sift: Self.sift(image)
        case .denseSIFT(let step, let binSize): Self.denseSIFT(image, step: step, binSize: binSize)
        }
        if rootSIFT {
            result.descriptors.withUnsafeMutableBufferPointer {
                DescriptorTransform.rootSIFT.apply($0, dimension: Self.dimension)
            }
        }
        return result
    }

    private static let siftCreation = Mutex(())

    /// `min(512·v, 255)` for each of VLFeat's descriptor values, appended to `out`.
    static func appendScaled(_ values: UnsafePointer<Float>, to out: inout [Float]) {
        for j in 0..<dimension { out.append(min(512 * values[j], 255)) }
    }

    static func sift(_ image: GreyImage) -> (descriptors: [Float], frames: [SIFTFrame]) {
        // vl_sift_new fills a process-wide exponential table: one thread at a time.
        let filter = siftCreation.withLock { _ in vl_sift_new(Int32(image.width), Int32(image.height), -1, 3, 0)! }
        defer { vl_sift_delete(filter) }
        let pixels = image.pixels.map { $0 * 255 }
        var descriptors: [Float] = [], frames: [SIFTFrame] = []
        var buffer = [Float](repeating: 0, count: dimension)
        var angles = [Double](repeating: 0, count: 4)
        var status = pixels.withUnsafeBufferPointer { vl_sift_process_first_octave(filter, $0.baseAddress) }
        while status == VL_ERR_OK {
            vl_sift_detect(filter)
            // An octave without keypoints (a flat image, or one too small for it) has no array.
            let found = Int(vl_sift_get_nkeypoints(filter))
            for i in 0..<found {
                guard let keypoints = vl_sift_get_keypoints(filter) else { break }
                let keypoint = keypoints + i
                let count = Int(vl_sift_calc_keypoint_orientations(filter, &angles, keypoint))
                for angle in angles.prefix(count) {
                    vl_sift_calc_keypoint_descriptor(filter, &buffer, keypoint, angle)
                    appendScaled(buffer, to: &descriptors)
                    frames.append(SIFTFrame(x: keypoint.pointee.x, y: keypoint.pointee.y, scale: keypoint.pointee.sigma,
                                        orientation: Float(angle)))
                }
            }
            status = vl_sift_process_next_octave(filter)
        }
        return (descriptors, frames)
    }

    static func denseSIFT(_ image: GreyImage, step: Int, binSize: Int) -> (descriptors: [Float], frames: [SIFTFrame]) {
        let width = image.width, height = image.height
        var smoothed = [Float](repeating: 0, count: width * height)
        image.pixels.withUnsafeBufferPointer { source in
            let sigma = Double(binSize) / phowMagnification
            vl_imsmooth_f(&smoothed, vl_size(width), source.baseAddress, vl_size(width), vl_size(height), vl_size(width),
                          sigma, sigma)
        }
        let filter = vl_dsift_new_basic(Int32(width), Int32(height), Int32(step), Int32(binSize))!
        defer { vl_dsift_delete(filter) }
        vl_dsift_set_flat_window(filter, 1)
        vl_dsift_set_window_size(filter, phowWindowSize)
        vl_dsift_process(filter, smoothed)
        let count = Int(vl_dsift_get_keypoint_num(filter))
        guard count > 0, let values = vl_dsift_get_descriptors(filter), let keypoints = vl_dsift_get_keypoints(filter) else {
            return ([], [])
        }
        var descriptors: [Float] = [], frames: [SIFTFrame] = []
        descriptors.reserveCapacity(count * dimension)
        frames.reserveCapacity(count)
        for i in 0..<count {
            let keypoint = keypoints[i]
            if keypoint.norm < phowContrastThreshold {
                descriptors.append(contentsOf: repeatElement(0, count: dimension))
            } else {
                appendScaled(values + i * dimension, to: &descriptors)
            }
            frames.append(SIFTFrame(x: Float(keypoint.x), y: Float(keypoint.y), scale: Float(binSize), orientation: 0))
        }
        return (descriptors, frames)
    }
}
