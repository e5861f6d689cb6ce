import TestSupport
import Testing
@testable import Descriptors

@Suite struct NpyReaderTests {
    let floats: [Float] = [1, -2, 3.5, 4, 5, 6]

    @Test(arguments: [UInt8(1), 2, 3])
    func headerVersions(version: UInt8) throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("v.npy", npy(version: version, dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
                                          data: bytes(floats: floats)))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.rows == 3 && matrix.dimension == 2 && matrix.elementType == .float32)
        #expect(matrix.toArray() == floats)
    }

    @Test(arguments: [
        "{'shape': (3, 2), 'fortran_order': False, 'descr': '<f4'}",
        "{ \"descr\" : \"<f4\" ,\n 'fortran_order':False,'shape':( 3 ,2 , ) , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 2L), 'extra': [1, None, 'x'], }",
    ])
    func headerDictsAreParsedRobustly(dict: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("h.npy", npy(dict: dict, data: bytes(floats: floats)))
        #expect(try DescriptorMatrix.open(path: path).toArray() == floats)
    }

    @Test(arguments: ["|u1", "<u1"])
    func uint8IsConvertedToFloat(descr: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("u.npy", npy(dict: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (2, 3), }",
                                          data: [0, 1, 255, 9, 8, 7]))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.elementType == .uint8)
        var scratch: [Float] = []
        let values = try matrix.withFloatRows(0..<2, scratch: &scratch) { block in
            Array(UnsafeBufferPointer(start: block.base, count: block.rows * block.stride))
        }
        #expect(values == [0, 1, 255, 9, 8, 7])
    }

    @Test func unalignedFloatDataIsStillRead() throws {
        // A header whose length leaves the data at an odd offset.
        var file = npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", data: [])
        file.insert(0x20, at: file.count - 1)
        file[8] += 1
        let dir = try TemporaryDirectory()
        let path = dir.write("odd.npy", file + bytes(floats: floats))
        #expect(try DescriptorMatrix.open(path: path).toArray() == floats)
    }

    @Test func zeroRowsGiveAnEmptyMatrix() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("z.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 128), }", data: []))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.rows == 0 && matrix.dimension == 128)
        #expect(matrix.toArray().isEmpty)
        let written = dir.file("w.npy")
        try NpyFile.write(path: written, rows: 0, columns: 4, values: [])
        let read = try NpyFile.readFloat32(path: written)
        #expect(read.rows == 0 && read.columns == 4 && read.values.isEmpty)
    }

    @Test func badInputsAreNamed() throws {
        let dir = try TemporaryDirectory()
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
        let data = bytes(floats: floats)
        func check(_ name: String, _ file: [UInt8], _ code: DescriptorError.Code, _ fragments: String...,
                   sourceLocation: SourceLocation = #_sourceLocation) {
            let path = dir.write(name, file)
            do {
                _ = try DescriptorMatrix.open(path: path)
                Issue.record("expected \(code) for \(name)", sourceLocation: sourceLocation)
            } catch let error as DescriptorError {
                #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
                #expect(error.path == path && error.location != nil, "\(error)", sourceLocation: sourceLocation)
                for fragment in fragments {
                    #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
                }
            } catch {
                Issue.record("\(error)", sourceLocation: sourceLocation)
            }
        }
        check("empty.npy", [], .malformed, "empty")
        check("magic.npy", Array("PK\u{3}\u{4}not numpy at all".utf8), .malformed, "bad magic")
        check("short.npy", [0x93] + Array("NUMPY".utf8) + [1], .truncated)
        var v4 = npy(dict: good, data: data)
        v4[6] = 4
        check("v4.npy", v4, .unsupportedFormat, "version 4.0")
        var longHeader = npy(dict: good, data: [])
        longHeader[8] = 0xFF
        check("long.npy", longHeader, .truncated, "header")
        check("fortran.npy", npy(dict: "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", data: data),
              .unsupportedFormat, "not C order")
        check("f8.npy", npy(dict: "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 1), }", data: data),
              .unsupportedFormat, "'<f8'")
        check("be.npy", npy(dict: "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", data: data),
              .unsupportedFormat, "'>f4'")
        check("1d.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data: data),
              .unsupportedFormat, "(6,) is not 2-D")
        check("3d.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 2), }", data: data),
              .unsupportedFormat, "(1, 3, 2) is not 2-D")
        check("cols0.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", data: data),
              .unsupportedFormat, "dimension 0")
        check("data.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", data: data),
              .truncated, "needs 32 data bytes but the file has 24", "byte 128")
        check("overflow.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 2), }",
                                  data: data), .truncated, "Int.max")
        check("nokey.npy", npy(dict: "{'descr': '<f4', 'shape': (3, 2), }", data: data), .malformed, "'fortran_order'")
        check("syntax.npy", npy(dict: "{'descr': '<f4' 'fortran_order': False, 'shape': (3, 2)}", data: data),
              .malformed, "expected ',' or '}'", "byte 26")
        check("unterminated.npy", npy(dict: "{'descr': '<f4, 'fortran_order': False}", data: data), .malformed)
        check("notdict.npy", npy(dict: "('descr', '<f4')", data: data), .malformed, "expected a dict")
        check("negative.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }", data: data),
              .malformed, "'shape'")
        check("junk.npy", npy(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), } x", data: data),
              .malformed, "after the dict")
        check("bool.npy", npy(dict: "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 2), }", data: data),
              .malformed, "'fortran_order'")
    }

    @Test func npyFileRoundTripsMatricesAndVectors() throws {
        let dir = try TemporaryDirectory()
        let centres = dir.file("centres.npy")
        try NpyFile.write(path: centres, rows: 3, columns: 2, values: floats)
        let bytes = dir.read("centres.npy")
        #expect(bytes.count == 128 + 24)
        #expect(String(decoding: bytes[10..<128], as: UTF8.self).hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"))
        let read = try NpyFile.readFloat32(path: centres)
        #expect(read.rows == 3 && read.columns == 2 && read.values == floats)

        let priors = dir.file("priors.npy")
        try NpyFile.write(path: priors, vector: [0.25, 0.75])
        #expect(String(decoding: dir.read("priors.npy")[10..<128], as: UTF8.self).contains("'shape': (2,)"))
        let vector = try NpyFile.readFloat32(path: priors)
        #expect(vector.rows == 2 && vector.columns == 1 && vector.values == [0.25, 0.75])
        expectError(.unsupportedFormat, priors, "(2,) is not 2-D") { _ = try DescriptorMatrix.open(path: priors) }

        expectError(.invalidArgument, "5 values") {
            try NpyFile.write(path: dir.file("bad.npy"), rows: 3, columns: 2, values: [1, 2, 3, 4, 5])
        }
        #expect(!dir.names().contains("bad.npy"))
    }
}
