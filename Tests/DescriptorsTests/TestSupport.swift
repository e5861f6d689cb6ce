import Foundation
import Testing
@testable import Descriptors

func bytes(int32 value: Int32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
func bytes(floats: [Float]) -> [UInt8] { floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
func bytes(int32s: [Int32]) -> [UInt8] { int32s.flatMap { bytes(int32: $0) } }

/// Texmex file bodies: each row prefixed by its dimension (or by `dimensions[i]`, to corrupt it).
func bvecs(_ rows: [[UInt8]], dimensions: [Int]? = nil) -> [UInt8] {
    rows.enumerated().flatMap { i, row in bytes(int32: Int32(dimensions?[i] ?? row.count)) + row }
}

func fvecs(_ rows: [[Float]], dimensions: [Int]? = nil) -> [UInt8] {
    rows.enumerated().flatMap { i, row in bytes(int32: Int32(dimensions?[i] ?? row.count)) + bytes(floats: row) }
}

func ivecs(_ rows: [[Int32]]) -> [UInt8] {
    rows.flatMap { row in bytes(int32: Int32(row.count)) + bytes(int32s: row) }
}

/// An `.npy` file with `dict` as its header text, padded to a multiple of 64 bytes.
func npy(version: UInt8 = 1, dict: String, data: [UInt8]) -> [UInt8] {
    let preamble = version == 1 ? 10 : 12
    var text = Array(dict.utf8)
    while (preamble + text.count + 1) % 64 != 0 { text.append(0x20) }
    text.append(0x0A)
    let length = text.count
    let lengthBytes: [UInt8] = version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)]
        : [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
    return [0x93] + Array("NUMPY".utf8) + [version, 0] + lengthBytes + text + data
}

/// Runs `body` and checks that it throws a `DescriptorError` with `code` whose description
/// contains every one of `fragments`.
func expectError(_ code: DescriptorError.Code, _ fragments: String...,
                 sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a '\(code)' error", sourceLocation: sourceLocation)
    } catch let error as DescriptorError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.description.contains(fragment), "'\(fragment)' missing from: \(error)",
                    sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
