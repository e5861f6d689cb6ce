import CVLFeat
import Descriptors
@testable import Features
import Foundation
import TestSupport
import Testing

/// VLFeat called directly, the way its `sift` tool and `vl_sift` call it, on given pixels.
enum VLFeatReference {
    static func sift(_ pixels: [Float], width: Int, height: Int) -> (descriptors: [Float], frames: [[Float]]) {
        let filter = vl_sift_new(Int32(width), Int32(height), -1, 3, 0)!
        defer { vl_sift_delete(filter) }
        var descriptors: [Float] = [], frames: [[Float]] = []
        var descriptor = [Float](repeating: 0, count: 128), angles = [Double](repeating: 0, count: 4)
        var first = true
        while true {
            let status = first ? vl_sift_process_first_octave(filter, pixels) : vl_sift_process_next_octave(filter)
            first = false
            if status != VL_ERR_OK { break }
            vl_sift_detect(filter)
            for i in 0..<Int(vl_sift_get_nkeypoints(filter)) {
                let keypoint = vl_sift_get_keypoints(filter)! + i
                let count = Int(vl_sift_calc_keypoint_orientations(filter, &angles, keypoint))
                for q in 0..<count {
                    vl_sift_calc_keypoint_descriptor(filter, &descriptor, keypoint, angles[q])
                    descriptors += descriptor.map { min(512 * $0, 255) }
                    frames.append([keypoint.pointee.x, keypoint.pointee.y, keypoint.pointee.sigma, Float(angles[q])])
                }
            }
        }
        return (descriptors, frames)
    }

    /// `vl_phow` for one size: vl_imsmooth by size/6, vl_dsift fast with window 1.5, contrast threshold 0.005.
    static func phow(_ pixels: [Float], width: Int, height: Int, step: Int, size: Int) -> (descriptors: [Float], frames: [[Float]]) {
        var smoothed = [Float](repeating: 0, count: pixels.count)
        vl_imsmooth_f(&smoothed, vl_size(width), pixels, vl_size(width), vl_size(height), vl_size(width),
                      Double(size) / 6, Double(size) / 6)
        let filter = vl_dsift_new_basic(Int32(width), Int32(height), Int32(step), Int32(size))!
        defer { vl_dsift_delete(filter) }
        vl_dsift_set_flat_window(filter, 1)
        vl_dsift_set_window_size(filter, 1.5)
        vl_dsift_process(filter, smoothed)
        var descriptors: [Float] = [], frames: [[Float]] = []
        for i in 0..<Int(vl_dsift_get_keypoint_num(filter)) {
            let keypoint = vl_dsift_get_keypoints(filter)[i]
            let values = UnsafeBufferPointer(start: vl_dsift_get_descriptors(filter)! + 128 * i, count: 128)
            descriptors += keypoint.norm < 0.005 ? [Float](repeating: 0, count: 128) : values.map { min(512 * $0, 255) }
            frames.append([Float(keypoint.x), Float(keypoint.y)])
        }
        return (descriptors, frames)
    }
}

@Suite struct ExtractionTests {
    @Test func siftEqualsVLFeatOnTheSameDecodedPixels() throws {
        let scratch = try TemporaryDirectory()
        let path = try TestImages.file("scene.png", in: scratch, width: 160, height: 120)
        let image = try ImageDecoder().grey(path: path)
        let (descriptors, frames) = try FeatureExtractor(method: .sift).extract(image)
        let reference = VLFeatReference.sift(image.pixels.map { $0 * 255 }, width: image.width, height: image.height)
        #expect(frames.count >= 20, "the test image should give SIFT something to find")
        #expect(frames.map { [$0.x, $0.y, $0.scale, $0.orientation] } == reference.frames)
        #expect(descriptors.count == reference.descriptors.count)
        #expect(zip(descriptors, reference.descriptors).allSatisfy { abs($0 - $1) <= 1e-3 })
        #expect(descriptors.allSatisfy { $0 >= 0 && $0 <= 255 } && descriptors.contains { $0 > 100 })
    }

    @Test func denseSIFTEqualsPhowOnTheSameDecodedPixels() throws {
        let scratch = try TemporaryDirectory()
        let path = try TestImages.file("scene.png", in: scratch, width: 100, height: 70, seed: 3)
        let image = try ImageDecoder().grey(path: path)
        let (descriptors, frames) = try FeatureExtractor(method: .denseSIFT(step: 4, binSize: 8)).extract(image)
        let reference = VLFeatReference.phow(image.pixels, width: 100, height: 70, step: 4, size: 8)
        // The grid: centres every 4 pixels where 4 bins of 8 fit in 0…width-1.
        #expect(frames.count == ((99 - 24) / 4 + 1) * ((69 - 24) / 4 + 1))
        #expect(frames.map { [$0.x, $0.y] } == reference.frames)
        #expect(zip(descriptors, reference.descriptors).allSatisfy { abs($0 - $1) <= 1e-3 })
        #expect(descriptors.count == reference.descriptors.count && descriptors.contains { $0 > 50 })
    }

    @Test func rootSIFTOnExtractEqualsAFloat64Reference() throws {
        let scratch = try TemporaryDirectory()
        let image = try ImageDecoder().grey(path: try TestImages.file("scene.png", in: scratch, width: 120, height: 90))
        let plain = try FeatureExtractor(method: .sift).extract(image).descriptors
        let root = try FeatureExtractor(method: .sift, rootSIFT: true).extract(image).descriptors
        #expect(plain.count == root.count && !plain.isEmpty)
        for start in stride(from: 0, to: plain.count, by: 128) {
            let row = plain[start ..< start + 128].map(Double.init)
            let norm = row.reduce(0) { $0 + abs($1) }
            for j in 0..<128 {
                let expected = (row[j] / norm).squareRoot()
                #expect(abs(Double(root[start + j]) - expected) <= 1e-7 * max(1, expected))
            }
            // RootSIFT rows have unit L2 norm.
            let squares: Double = root[start ..< start + 128].reduce(0.0) { (sum: Double, value: Float) in sum + Double(value) * Double(value) }
            #expect(abs(squares - 1) < 1e-5)
        }
    }

    @Test func downscalingAveragesAreas() throws {
        // 4×2 → longer side 2: each output pixel is the mean of a 2×2 block.
        let image = try GreyImage(width: 4, height: 2, pixels: [0, 1, 2, 3, 4, 5, 6, 7].map { Float($0) / 8 })
        let small = image.downscaled(maxSide: 2)
        #expect(small.width == 2 && small.height == 1)
        #expect(small.pixels == [Float(0 + 1 + 4 + 5) / 32, Float(2 + 3 + 6 + 7) / 32])
        // 10 → 3: fractional coverage, weights summing to 1, every source sample used fully.
        let weights = GreyImage.areaWeights(from: 10, to: 3)
        #expect(weights.allSatisfy { abs($0.reduce(0) { $0 + $1.weight } - 1) < 1e-12 })
        #expect(weights[1].map(\.index) == [3, 4, 5, 6])
        var coverage = [Double](repeating: 0, count: 10)
        for tap in weights.joined() { coverage[tap.index] += tap.weight * 10 / 3 }
        #expect(coverage.allSatisfy { abs($0 - 1) < 1e-12 })
        // An image that fits is unchanged; the aspect ratio is kept.
        #expect(image.downscaled(maxSide: 4) == image)
        let wide = try GreyImage(width: 300, height: 100, pixels: [Float](repeating: 0.5, count: 30_000)).downscaled(maxSide: 64)
        #expect(wide.width == 64 && wide.height == 21 && wide.pixels.allSatisfy { abs($0 - 0.5) < 1e-6 })
    }

    /// A flat image has no keypoints: VLFeat then has no keypoint array at all (it used to
    /// be unwrapped and trapped); SIFT gives no descriptors.
    @Test func aFlatImageHasNoSIFTKeypointsAndDoesNotTrap() throws {
        let flat = try GreyImage(width: 96, height: 64, pixels: [Float](repeating: 0.5, count: 96 * 64))
        let (descriptors, frames) = try FeatureExtractor(method: .sift).extract(flat)
        #expect(descriptors.isEmpty && frames.isEmpty)
    }

    @Test func settingsOutsideTheirRangesAreRefused() {
        for method in [ExtractionMethod.denseSIFT(step: 0, binSize: 8), .denseSIFT(step: 4, binSize: 257),
                       .denseSIFT(step: 1025, binSize: 8), .denseSIFT(step: 4, binSize: Int(Int32.max) + 1)] {
            #expect(throws: FeatureError.self) { try FeatureExtractor(method: method) }
        }
        #expect(throws: FeatureError.self) { try FeatureExtractor(method: .sift, maximumSide: 15) }
        #expect(throws: FeatureError.self) { try ImageEncoder.encode([], width: 1 << 40, height: 0, channels: 1, as: .png) }
    }

    @Test func maxSideShrinksBeforeExtraction() throws {
        let scratch = try TemporaryDirectory()
        let image = try ImageDecoder().grey(path: try TestImages.file("big.png", in: scratch, width: 200, height: 100))
        let frames = try FeatureExtractor(method: .denseSIFT(step: 4, binSize: 8), maximumSide: 100).extract(image).frames
        #expect(frames.count == ((99 - 24) / 4 + 1) * ((49 - 24) / 4 + 1))
    }
}
