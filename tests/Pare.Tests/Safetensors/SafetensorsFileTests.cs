using System.Buffers.Binary;
using System.Text;
using Pare.Formats.Safetensors;
using Pare.Tensors;

namespace Pare.Tests.Safetensors;

public class SafetensorsFileTests
{
    /// <summary>Raw file: u64 length (or an override), header text, data.</summary>
    static void WriteRaw(string path, string header, byte[] data, ulong? length = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, length ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        File.WriteAllBytes(path, bytes);
    }

    static T Rejects<T>(Func<IDisposable> open, string fragment) where T : Exception =>
        Rejects<T>(() => open().Dispose(), fragment);

    static T Rejects<T>(Action act, string fragment) where T : Exception
    {
        var e = Assert.ThrowsAny<T>(act);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(fragment, e.Message, StringComparison.OrdinalIgnoreCase);
        return e;
    }

    static byte[] F32Bytes(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
        return b;
    }

    [Fact]
    public void WriterOutputParsesWithMetadataShapesAndValues()
    {
        using var tmp = new TempDir();
        var f16 = new byte[6];
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(2 * i), (Half)(i + 0.5f));
        var bf16 = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(bf16, (ushort)(BitConverter.SingleToUInt32Bits(-2f) >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(2), (ushort)(BitConverter.SingleToUInt32Bits(3.5f) >> 16));
        new SafetensorsWriter()
            .SetMetadata("format", "pt")
            .AddTensor("m", "F32", [2, 3], F32Bytes(1, 2, 3, 4, 5, 6))
            .AddTensor("h", "F16", [3], f16)
            .AddTensor("b", "BF16", [2], bf16)
            .AddTensor("ids", "I64", [1], new byte[8])
            .Write(tmp["a.safetensors"]);

        using var f = SafetensorsFile.Open(tmp["a.safetensors"]);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(["m", "h", "b", "ids"], f.Tensors.Select(t => t.Name));
        Assert.Equal(0, f.DataOffset % 8); // header padded like the reference writer
        var m = f.Matrix(f.GetTensor("m"));
        Assert.Equal((GgmlType.F32, 2, 3), (m.Type, m.Rows, m.Cols));
        Assert.Equal([4f, 5, 6], RandomModel.RowF32(m, 1));
        Assert.Equal([0.5f, 1.5f, 2.5f], f.Vector(f.GetTensor("h")));
        Assert.Equal([-2f, 3.5f], f.Vector(f.GetTensor("b")));
        // Listed, but not computable.
        Rejects<InvalidModelException>(() => f.Vector(f.GetTensor("ids")), "dtype I64");
        Rejects<InvalidModelException>(() => f.GetTensor("nope"), "missing tensor 'nope'");
    }

    [Fact]
    public void UnalignedDataSectionAndTensorsStillRead()
    {
        using var tmp = new TempDir();
        // Header of odd length, then a 1-element F16 so the F32 matrix after it starts at an odd address + 2.
        string header = "{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[2,18]}} ";
        if (Encoding.UTF8.GetByteCount(header) % 2 == 0) header += " ";
        var data = new byte[18];
        BinaryPrimitives.WriteHalfLittleEndian(data, (Half)7f);
        F32Bytes(1.25f, -2, 3, 4.5f).CopyTo(data, 2);
        WriteRaw(tmp["u.safetensors"], header, data);

        using var f = SafetensorsFile.Open(tmp["u.safetensors"]);
        Assert.NotEqual(0, f.DataOffset % 4);
        var w = f.Matrix(f.GetTensor("w"));
        Assert.NotEqual(0, w.Data % 4);
        Assert.Equal([1.25f, -2f], RandomModel.RowF32(w, 0));
        Assert.Equal([3f, 4.5f], RandomModel.RowF32(w, 1));
        Assert.Equal([7f], f.Vector(f.GetTensor("a")));
        Assert.Equal([1.25f, -2f, 3f, 4.5f], f.Vector(f.GetTensor("w")));
    }

    [Fact]
    public void ScalarsEmptyTensorsAndOverlapsAreAccepted()
    {
        using var tmp = new TempDir();
        WriteRaw(tmp["s.safetensors"],
            "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]}," +
            "\"o\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},\"__metadata__\":null}",
            F32Bytes(9));
        using var f = SafetensorsFile.Open(tmp["s.safetensors"]);
        Assert.Equal([9f], f.Vector(f.GetTensor("s")));
        Assert.Empty(f.Vector(f.GetTensor("e")));
        Assert.Equal(2, f.Vector(f.GetTensor("o")).Length);
    }

    const string Good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    public static TheoryData<string, string> BadHeaders => new()
    {
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,32]}}", "extend past the data section" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]}}", "extend past the data section" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", "needs 24" },
        { "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", "needs 8" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,0]}}", "begin after end" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-4,12]}}", "invalid data_offsets" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0]}}", "data_offsets" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,1e30]}}", "invalid data_offsets" },
        { "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", "unknown dtype 'Q4'" },
        { "{\"w\":{\"dtype\":7,\"shape\":[2,2],\"data_offsets\":[0,16]}}", "dtype" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", "invalid dimension" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", "larger than the data section" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[16,16,16,16,16,16,16,16],\"data_offsets\":[0,16]}}", "larger than the data section" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "dimensions" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2x2\",\"data_offsets\":[0,16]}}", "shape" },
        { "{\"w\":[1,2]}", "not a JSON object" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", "duplicate tensor 'w'" },
        { "{\"__metadata__\":{\"a\":1}}", "metadata 'a' is not a string" },
        { "{\"__metadata__\":[]}", "'__metadata__' is not an object" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]", "not valid JSON" },
        { "{\"w\" \"x\"}", "not valid JSON" },
        { "[1, 2, 3, 4]", "does not start with '{'" },
        { "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void HostileHeadersAreRejectedWithOneLineMessages(string header, string fragment)
    {
        using var tmp = new TempDir();
        WriteRaw(tmp["bad.safetensors"], header, F32Bytes(1, 2, 3, 4));
        Rejects<InvalidModelException>(() => SafetensorsFile.Open(tmp["bad.safetensors"]), fragment);
    }

    [Fact]
    public void HeaderLengthBeyondFileOrCapIsRejectedWithoutAllocating()
    {
        using var tmp = new TempDir();
        WriteRaw(tmp["a"], Good, F32Bytes(1, 2, 3, 4), length: 1UL << 40);
        Rejects<InvalidModelException>(() => SafetensorsFile.Open(tmp["a"]), "larger than the file");
        WriteRaw(tmp["b"], Good, F32Bytes(1, 2, 3, 4), length: ulong.MaxValue);
        Rejects<InvalidModelException>(() => SafetensorsFile.Open(tmp["b"]), "larger than the file");
        WriteRaw(tmp["c"], Good, F32Bytes(1, 2, 3, 4), length: 1);
        Rejects<InvalidModelException>(() => SafetensorsFile.Open(tmp["c"]), "too short");
        File.WriteAllBytes(tmp["d"], [1, 0, 0]);
        Rejects<InvalidModelException>(() => SafetensorsFile.Open(tmp["d"]), "too short");
        Rejects<PareException>(() => SafetensorsFile.Open(tmp["missing"]), "not found");
    }

    [Fact]
    public void EveryTruncationIsRejectedCleanly()
    {
        using var tmp = new TempDir();
        new SafetensorsWriter().AddTensor("w", "F32", [2, 2], F32Bytes(1, 2, 3, 4)).AddF32("n", [5, 6]).Write(tmp["full"]);
        var full = File.ReadAllBytes(tmp["full"]);
        for (int n = 0; n < full.Length; n++)
        {
            File.WriteAllBytes(tmp["cut"], full.AsSpan(0, n).ToArray());
            var e = Assert.ThrowsAny<PareException>(() => SafetensorsFile.Open(tmp["cut"]).Dispose());
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    [Fact]
    public void RandomByteCorruptionNeverEscapesAsAnotherException()
    {
        using var tmp = new TempDir();
        new SafetensorsWriter().AddTensor("w", "F16", [2, 3], new byte[12]).AddF32("n", [5, 6]).SetMetadata("format", "pt").Write(tmp["full"]);
        var full = File.ReadAllBytes(tmp["full"]);
        var rng = new Random(42);
        int accepted = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            var b = (byte[])full.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
                b[rng.Next(b.Length)] = rng.Next(3) == 0 ? (byte)rng.Next(256) : (byte)"0123456789[]{}\",:-eE"[rng.Next(19)];
            File.WriteAllBytes(tmp["mut"], b);
            try
            {
                using var f = SafetensorsFile.Open(tmp["mut"]);
                foreach (var t in f.Tensors)
                    if (SafetensorsDType.ToGgml(t.DType) != null) _ = f.Vector(t);
                accepted++;
            }
            catch (PareException e) { Assert.DoesNotContain('\n', e.Message); }
        }
        Assert.True(accepted < 400);
    }

    [Fact]
    public void ShardedByIndexAndByDirectory()
    {
        using var tmp = new TempDir();
        new SafetensorsWriter().AddF32("a", [1, 2]).AddF32("b", [3]).Write(tmp["model-00001-of-00002.safetensors"]);
        new SafetensorsWriter().AddF32("c", [4]).Write(tmp["model-00002-of-00002.safetensors"]);

        // Without an index: every *.safetensors file, names must not collide.
        using (var ck = SafetensorsCheckpoint.Open(tmp.Path))
        {
            Assert.Equal(["a", "b", "c"], ck.TensorNames.Order());
            Assert.Equal([4f], ck.Vector("c"));
        }

        // With an index: the weight map decides (b is not listed, so it is not part of the checkpoint).
        File.WriteAllText(tmp[SafetensorsCheckpoint.IndexFileName],
            "{\"metadata\":{\"total_size\":12},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}");
        using (var ck = SafetensorsCheckpoint.Open(tmp.Path))
        {
            Assert.Equal(["a", "c"], ck.TensorNames.Order());
            Assert.Equal([1f, 2f], ck.Vector("a"));
            Rejects<InvalidModelException>(() => ck.Vector("b"), "missing tensor 'b'");
        }
        using (var ck = SafetensorsCheckpoint.Open(tmp[SafetensorsCheckpoint.IndexFileName]))
            Assert.Equal(2, ck.Files.Count);
        using (var ck = SafetensorsCheckpoint.Open(tmp["model-00002-of-00002.safetensors"]))
            Assert.Equal(["c"], ck.TensorNames);
    }

    [Theory]
    [InlineData("{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "not a plain file name")]
    [InlineData("{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "not a plain file name")]
    [InlineData("{\"weight_map\":{\"zz\":\"s1.safetensors\"}}", "tensor 'zz' listed in the index is missing")]
    [InlineData("{\"weight_map\":{\"a\":\"nope.safetensors\"}}", "not found")]
    [InlineData("{\"weight_map\":{}}", "empty")]
    [InlineData("{\"weight_map\":{\"a\":3}}", "not a file name")]
    [InlineData("{\"metadata\":{}}", "no 'weight_map'")]
    [InlineData("{\"weight_map\":", "not valid JSON")]
    public void BadIndexesAreRejected(string index, string fragment)
    {
        using var tmp = new TempDir();
        new SafetensorsWriter().AddF32("a", [1]).Write(tmp["s1.safetensors"]);
        File.WriteAllText(tmp[SafetensorsCheckpoint.IndexFileName], index);
        Rejects<PareException>(() => SafetensorsCheckpoint.Open(tmp.Path), fragment);
    }

    [Fact]
    public void CollidingShardsAndEmptyDirectoryAreRejected()
    {
        using var tmp = new TempDir();
        Rejects<PareException>(() => SafetensorsCheckpoint.Open(tmp.Path), "no model.safetensors.index.json");
        new SafetensorsWriter().AddF32("a", [1]).Write(tmp["s1.safetensors"]);
        new SafetensorsWriter().AddF32("a", [2]).Write(tmp["s2.safetensors"]);
        Rejects<InvalidModelException>(() => SafetensorsCheckpoint.Open(tmp.Path), "also appears in");
    }
}
