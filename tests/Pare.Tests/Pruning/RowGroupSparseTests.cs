using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Kernels.Sparse;
using Pare.Models;
using Pare.Pruning;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Pruning;

/// <summary>
/// The row-group compact format (one column mask per group of rows, <see cref="RowGroupSparseMatrix"/>): encode and
/// decode, its kernels against the scalar reference, bad blobs, the row-group pruners, and a model file end to end.
/// </summary>
public unsafe class RowGroupSparseTests
{
    /// <summary>
    /// A random matrix pruned with row-group magnitude (or, when <paramref name="shared"/> is false, unstructured zeros
    /// per weight, so the group masks are unions), stored as <paramref name="type"/>; returns the stored bytes and the
    /// values they hold.
    /// </summary>
    static (byte[] Dense, float[] Values) RandomGrouped(GgmlType type, int rows, int cols, double sparsity, int groupRows, bool shared, int seed)
    {
        var rng = new Random(seed);
        var v = new float[rows * cols];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1) * 0.1f;
        if (shared) Magnitude.PruneRowGroups(v, rows, cols, SparsityPattern.Unstructured(sparsity), groupRows, new bool[v.Length]);
        else for (int i = 0; i < v.Length; i++) if (rng.NextDouble() < sparsity) v[i] = 0;
        var dense = Quantizer.Quantize(type, v);
        var back = new float[v.Length];
        for (int r = 0; r < rows; r++) Dequant.Row(type, dense.AsSpan((int)(r * GgmlTypeInfo.RowBytes(type, cols))), back.AsSpan(r * cols, cols));
        return (dense, back);
    }

    static RowGroupSparseMatrix Open(byte[] blob, int rows, int cols, out byte[] pinned)
    {
        pinned = GC.AllocateArray<byte>(blob.Length, pinned: true);
        blob.CopyTo(pinned, 0);
        return RowGroupSparseMatrix.Open("t", (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned)), blob.Length, rows, cols);
    }

    [Theory]
    [InlineData(GgmlType.F16, 0.5, 8, true)]
    [InlineData(GgmlType.F16, 0.7, 4, true)]
    [InlineData(GgmlType.F16, 0.5, 3, false)]
    [InlineData(GgmlType.Q8_0, 0.5, 8, true)]
    [InlineData(GgmlType.Q8_0, 0.7, 4, true)]
    [InlineData(GgmlType.Q8_0, 0.3, 5, false)]
    [InlineData(GgmlType.Q8_0, 0.0, 8, true)]
    public void Encode_decode_round_trip(GgmlType type, double sparsity, int groupRows, bool shared)
    {
        const int rows = 37, cols = 544;
        var (dense, values) = RandomGrouped(type, rows, cols, sparsity, groupRows, shared, 11);
        var m = Open(RowGroupSparseMatrix.Encode(type, rows, cols, groupRows, dense), rows, cols, out var keep);
        Assert.Equal(groupRows, m.GroupRows);
        Assert.Equal((rows + groupRows - 1) / groupRows, m.Groups);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            m.DecodeRow(r, row);
            var want = values.AsSpan(r * cols, cols);
            float max = 0;
            foreach (var w in want) max = MathF.Max(max, MathF.Abs(w));
            for (int c = 0; c < cols; c++)
            {
                if (want[c] == 0) { Assert.Equal(0f, row[c]); continue; } // zeros stay exactly zero
                if (type == GgmlType.F16) Assert.Equal(want[c], row[c]);     // F16 halves are copied bit for bit
                else Assert.True(MathF.Abs(want[c] - row[c]) <= max / 254 * 1.01f + 1e-7f, $"({r}, {c}): {row[c]} vs {want[c]}"); // re-rounded per 32 packed values: half a step of max|row| / 127
            }
        }
        // With shared masks (and no value rounded to zero: F16) every stored value is a kept weight: nothing is padded in but columns.
        long stored = 0;
        for (int g = 0; g < m.Groups; g++) stored += (long)m.Count(g) * Math.Min(groupRows, rows - g * groupRows);
        if (shared && type == GgmlType.F16) Assert.Equal(values.LongCount(v => v != 0), stored);
        else Assert.True(stored >= values.LongCount(v => v != 0));
    }

    /// <summary>
    /// Fast kernels (AVX-512 compress, the no-AVX-512 path, the portable path, and MatMul's dispatch) against the scalar
    /// reference. Tolerances: F16 and the portable path multiply exact values, so only float summation differs
    /// (1e-5 of sum |w x|); the Q8_0 kernels round x to int8 per 32 packed values, as the dense Q8_0 kernel does, so a
    /// value moves by at most max|x| / 254 and y by at most sum |w| max|x| / 254.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F16, 0.5, 8, 1, 320, true)]
    [InlineData(GgmlType.F16, 0.7, 4, 1, 544, true)]
    [InlineData(GgmlType.F16, 0.6, 8, 3, 544, false)]
    [InlineData(GgmlType.F16, 0.0, 8, 1, 320, true)]
    [InlineData(GgmlType.F16, 1.0 - 1.0 / 320, 4, 1, 320, true)] // one column per group
    [InlineData(GgmlType.Q8_0, 0.5, 8, 1, 320, true)]
    [InlineData(GgmlType.Q8_0, 0.7, 4, 1, 544, true)]
    [InlineData(GgmlType.Q8_0, 0.5, 6, 5, 544, false)]
    [InlineData(GgmlType.Q8_0, 0.9, 8, 1, 1024, true)]
    public void Fast_kernels_match_reference(GgmlType type, double sparsity, int groupRows, int n, int cols, bool shared)
    {
        const int rows = 37;
        var (dense, _) = RandomGrouped(type, rows, cols, sparsity, groupRows, shared, 42);
        var m = Open(RowGroupSparseMatrix.Encode(type, rows, cols, groupRows, dense), rows, cols, out var keep);
        var x = new float[n * cols];
        var rng = new Random(3);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var yRef = new float[n * rows];
        RowGroupSparseMatMul.MatMulRowsReference(m, x, n, yRef);
        var fast = new float[n * rows];
        RowGroupSparseMatMul.MatMulRows(m, x, n, fast, threads: 2);
        var noAvx512 = new float[n * rows];
        RowGroupSparseMatMul.MatMulRows(m, x, n, noAvx512, 2, RowGroupSparseMatMul.Tier.WithoutAvx512);
        var portable = new float[n * rows];
        RowGroupSparseMatMul.MatMulRows(m, x, n, portable, 2, RowGroupSparseMatMul.Tier.Portable);
        var dispatch = new float[n * rows];
        MatMul.MatMulRows(new WeightMatrix("t", rows, cols, m), x, n, dispatch, 2);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            m.DecodeRow(r, row);
            for (int t = 0; t < n; t++)
            {
                double absDot = 0, absW = 0, maxX = 0;
                for (int c = 0; c < cols; c++)
                {
                    absDot += Math.Abs(row[c] * x[t * cols + c]); absW += Math.Abs(row[c]); maxX = Math.Max(maxX, Math.Abs(x[t * cols + c]));
                }
                double exact = 1e-5 * absDot + 1e-6, rounded = type == GgmlType.Q8_0 ? absW * maxX / 254 * 1.01 + exact : exact;
                int i = t * rows + r;
                Assert.True(Math.Abs(portable[i] - yRef[i]) <= exact, $"portable ({t}, {r}): {portable[i]} vs {yRef[i]}");
                Assert.True(Math.Abs(fast[i] - yRef[i]) <= rounded, $"fast ({t}, {r}): {fast[i]} vs {yRef[i]}");
                Assert.True(Math.Abs(noAvx512[i] - yRef[i]) <= rounded, $"no AVX-512 ({t}, {r}): {noAvx512[i]} vs {yRef[i]}");
                Assert.Equal(fast[i], dispatch[i]);
            }
        }
        // Rows are independent of the thread split.
        var one = new float[n * rows];
        RowGroupSparseMatMul.MatMulRows(m, x, n, one, threads: 1);
        Assert.Equal(fast, one);
    }

    /// <summary>
    /// Decode over many chunks, each read as two runs of groups in turn (<c>Streams</c>), with a short last run, a last
    /// group of fewer rows and quads of fewer than four rows: every row written once, equal to the reference.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F16, 3)]
    [InlineData(GgmlType.F16, 8)]
    [InlineData(GgmlType.Q8_0, 3)]
    [InlineData(GgmlType.Q8_0, 32)]
    public void Decode_streams_cover_every_group(GgmlType type, int groupRows)
    {
        const int rows = 301, cols = 256;
        var (dense, _) = RandomGrouped(type, rows, cols, 0.6, groupRows, true, 5);
        var m = Open(RowGroupSparseMatrix.Encode(type, rows, cols, groupRows, dense), rows, cols, out var keep);
        var x = new float[cols];
        var rng = new Random(8);
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var yRef = new float[rows];
        RowGroupSparseMatMul.MatMulRowsReference(m, x, 1, yRef);
        var row = new float[cols];
        foreach (int threads in new[] { 1, 2 })
        {
            var y = new float[rows];
            Array.Fill(y, float.NaN);
            RowGroupSparseMatMul.MatMulRows(m, x, 1, y, threads);
            for (int r = 0; r < rows; r++)
            {
                m.DecodeRow(r, row);
                double absW = 0, absDot = 0;
                for (int c = 0; c < cols; c++) { absW += Math.Abs(row[c]); absDot += Math.Abs(row[c] * x[c]); }
                double tol = (type == GgmlType.Q8_0 ? absW / 65534 : 0) + 1e-5 * absDot + 1e-6; // Q8_0: x rounded to int16
                Assert.True(Math.Abs(y[r] - yRef[r]) <= tol, $"{threads} thread(s), row {r}: {y[r]} vs {yRef[r]}");
            }
        }
    }

    [Fact]
    public void F16_subnormal_values_are_exact()
    {
        // Subnormal halves take the dense F16 kernel's exact path (or the free denormal path on AMD): exact products,
        // float sums.
        const int rows = 8, cols = 64;
        var v = new float[rows * cols];
        for (int i = 0; i < v.Length; i += 3) v[i] = (i % 2 == 0 ? 1 : -1) * 3e-6f * (1 + i % 7); // below 2^-14: subnormal in f16
        v[5] = 0.25f;
        var m = Open(RowGroupSparseMatrix.Encode(GgmlType.F16, rows, cols, 4, Quantizer.Quantize(GgmlType.F16, v)), rows, cols, out var keep);
        var x = Enumerable.Range(0, cols).Select(i => (float)Math.Sin(i)).ToArray();
        var yRef = new float[rows];
        var y = new float[rows];
        RowGroupSparseMatMul.MatMulRowsReference(m, x, 1, yRef);
        RowGroupSparseMatMul.MatMulRows(m, x, 1, y, 1);
        for (int r = 0; r < rows; r++) Assert.Equal(yRef[r], y[r], 1e-6f); // |y| < 0.3: float summation only
    }

    /// <summary>
    /// The F16 decode kernel (prescaled x, halves converted 2^-112 times too small, four rows reduced together, the
    /// stream prefetched ahead) on groups of 32 with a partial last quad, halves that are subnormal, and activations at
    /// the ends of the float range: the prescale 2^s is clamped there (s = 0 for max |x| near 2^127, s = 127 for tiny x),
    /// and every row still equals the reference within float summation.
    /// </summary>
    [Theory]
    [InlineData(1.0)]
    [InlineData(1e30)]   // max |x| above 2^99: s clamped low, the sums scaled up by up to 2^112 afterwards
    [InlineData(3e38)]   // max |x| near float max: s = 0
    [InlineData(1e-30)]  // tiny x: s = 127
    public void F16_decode_matches_reference_with_subnormals_and_extreme_activations(double scale)
    {
        const int rows = 70, cols = 1024, groupRows = 32; // groups 32, 32, 6: the last quad of each group 4, 4, 2 rows
        var (_, values) = RandomGrouped(GgmlType.F16, rows, cols, 0.6, groupRows, true, 17);
        var rng = new Random(4);
        for (int i = 0; i < values.Length; i++)
            if (values[i] != 0 && rng.NextDouble() < 0.2) values[i] = (float)((rng.NextDouble() * 2 - 1) * 6e-5); // below 2^-14: subnormal
        var dense = Quantizer.Quantize(GgmlType.F16, values);
        var m = Open(RowGroupSparseMatrix.Encode(GgmlType.F16, rows, cols, groupRows, dense), rows, cols, out var keep);
        var x = new float[cols];
        double spread = scale == 3e38 ? 1e35 : 0.1 * scale;
        for (int i = 0; i < cols; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * spread);
        if (scale == 3e38) x[7] = 3e38f; // one value near the top (the sums stay finite: |w| <= 0.1)
        var yRef = new float[rows];
        RowGroupSparseMatMul.MatMulRowsReference(m, x, 1, yRef);
        var row = new float[cols];
        foreach (int threads in new[] { 1, 2 })
        {
            var y = new float[rows];
            RowGroupSparseMatMul.MatMulRows(m, x, 1, y, threads);
            for (int r = 0; r < rows; r++)
            {
                m.DecodeRow(r, row);
                double absDot = 0;
                for (int c = 0; c < cols; c++) absDot += Math.Abs((double)row[c] * x[c]);
                Assert.True(float.IsFinite(y[r]), $"{threads} thread(s), row {r}: {y[r]}");
                Assert.True(Math.Abs(y[r] - (double)yRef[r]) <= 1e-5 * absDot + 1e-45, $"{threads} thread(s), row {r}: {y[r]} vs {yRef[r]}");
            }
        }
    }

    [Fact]
    public void Bytes_per_weight_follow_the_packed_count()
    {
        // 50% row-group F16, groups of 8: 2 bytes per kept value + 4 bytes of mask per 32 columns per 8 rows (+ 8 per group).
        const int rows = 64, cols = 1024, g = 8;
        // Each group keeps exactly half of every 64 columns (c * 37 mod 64 runs over 0..63), a different half per group.
        var v = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) v[r * cols + c] = (c * 37 + r / g * 11) % 64 < 32 ? 0 : 1 + (r + c) % 5;
        foreach (var type in new[] { GgmlType.F16, GgmlType.Q8_0 })
        {
            var blob = RowGroupSparseMatrix.Encode(type, rows, cols, g, Quantizer.Quantize(type, v));
            double perWeight = (double)(blob.Length - RowGroupSparseMatrix.HeaderBytes - 8 * (rows / g + 1) - RowGroupSparseMatrix.TailPadding) / (rows * cols);
            // 50% of the values (F16 2 bytes; Q8_0 34 bytes per 32) + 4 bytes of mask per 32 columns and 8 per group,
            // padded to 64 bytes, shared by 8 rows.
            double values = type == GgmlType.F16 ? 0.5 * 2 : 0.5 * 34 / 32;
            Assert.Equal(192, RowGroupSparseMatrix.GroupHeaderBytes(cols));
            Assert.Equal(values + 192.0 / (g * cols), perWeight, 9);
        }
    }

    [Fact]
    public void Bad_blobs_are_rejected_with_a_clear_error()
    {
        const int rows = 10, cols = 64, g = 4;
        var (dense, _) = RandomGrouped(GgmlType.F16, rows, cols, 0.5, g, true, 1);
        var blob = RowGroupSparseMatrix.Encode(GgmlType.F16, rows, cols, g, dense);
        Open(blob, rows, cols, out _);
        string Fails(byte[] b, int r = rows) => Assert.Throws<InvalidModelException>(() => Open(b, r, cols, out _)).Message;
        Assert.Contains("shape", Fails(blob, rows + 1));
        Assert.Contains("truncated", Fails(blob[..20]));
        Assert.Contains("offset table is truncated", Fails(blob[..40]));
        Assert.Contains("truncated", Fails(blob[..(blob.Length / 2)]));
        Assert.Contains("padding", Fails(blob[..^1]));
        var bad = (byte[])blob.Clone(); bad[0] ^= 1;
        Assert.Contains("magic", Fails(bad));
        int group0 = (int)BitConverter.ToInt64(blob, RowGroupSparseMatrix.HeaderBytes);
        bad = (byte[])blob.Clone(); bad[group0] ^= 0x01; // a mask bit flipped: the count no longer matches
        Assert.Contains("inconsistent group mask", Fails(bad));
        bad = (byte[])blob.Clone(); BitConverter.TryWriteBytes(bad.AsSpan(group0 + cols / 32 * 4), 0u); bad[group0] = 0; bad[group0 + 4] = 0;
        Assert.Contains("inconsistent group mask", Fails(bad));
        bad = (byte[])blob.Clone(); BitConverter.TryWriteBytes(bad.AsSpan(20), 3u); // group rows: 10 rows need 4 groups of 3, not 3
        Assert.Contains("groups do not cover", Fails(bad));
        bad = (byte[])blob.Clone(); BitConverter.TryWriteBytes(bad.AsSpan(20), 0u);
        Assert.Contains("group rows", Fails(bad));
        // Same counts, a group made longer than its mask says (the next group's offset moved).
        bad = (byte[])blob.Clone(); BitConverter.TryWriteBytes(bad.AsSpan(RowGroupSparseMatrix.HeaderBytes + 8), BitConverter.ToInt64(blob, RowGroupSparseMatrix.HeaderBytes + 8) + 2);
        Assert.Contains("does not match its mask", Fails(bad));
        // A non-zero padding column (F16: count 32 of 64 is full; use a Q8_0 matrix with 20 kept columns per group).
        var v = new float[4 * 64];
        for (int r = 0; r < 4; r++) for (int c = 0; c < 20; c++) v[r * 64 + c] = 0.5f + c;
        var qb = RowGroupSparseMatrix.Encode(GgmlType.Q8_0, 4, 64, 4, Quantizer.Quantize(GgmlType.Q8_0, v));
        // One quad, one block: the four rows' scales (8 bytes), then row 0's 32 quants.
        int q0 = (int)BitConverter.ToInt64(qb, RowGroupSparseMatrix.HeaderBytes) + RowGroupSparseMatrix.GroupHeaderBytes(64) + 8;
        Open(qb, 4, 64, out _);
        var qbad = (byte[])qb.Clone(); qbad[q0 + 25] = 3;
        Assert.Contains("padding column 25", Assert.Throws<InvalidModelException>(() => Open(qbad, 4, 64, out _)).Message);
        qbad = (byte[])qb.Clone(); qbad[q0 + 3] = 0x80;
        Assert.Contains("-128", Assert.Throws<InvalidModelException>(() => Open(qbad, 4, 64, out _)).Message);
    }

    [Fact]
    public void Row_group_pruners_share_columns_within_each_group()
    {
        const int rows = 20, cols = 96, g = 8;
        var rng = new Random(9);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var norms = Enumerable.Range(0, cols).Select(i => 0.1 + i % 7).ToArray();
        foreach (var method in new[] { "magnitude", "wanda" })
        {
            var a = (float[])w.Clone();
            var pruned = new bool[a.Length];
            if (method == "magnitude") Magnitude.PruneRowGroups(a, rows, cols, SparsityPattern.Unstructured(0.5), g, pruned);
            else Wanda.PruneRowGroups(a, rows, cols, norms, SparsityPattern.Unstructured(0.5), g, pruned);
            Assert.Equal(rows * cols / 2, a.Count(v => v == 0), (double)g * cols / 8); // magnitude: one threshold over group scores
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    Assert.Equal(pruned[r / g * g * cols + c], pruned[r * cols + c]);
            if (method == "wanda")
                for (int r0 = 0; r0 < rows; r0 += g)
                {
                    // Each group prunes exactly half its columns, those with the smallest sum of |W| ||X||.
                    Assert.Equal(cols / 2, Enumerable.Range(0, cols).Count(c => pruned[r0 * cols + c]));
                    var score = Enumerable.Range(0, cols).Select(c => Enumerable.Range(r0, Math.Min(g, rows - r0)).Sum(r => Math.Abs(w[r * cols + c]) * Math.Sqrt(norms[c]))).ToArray();
                    double keptMin = Enumerable.Range(0, cols).Where(c => !pruned[r0 * cols + c]).Min(c => score[c]);
                    double prunedMax = Enumerable.Range(0, cols).Where(c => pruned[r0 * cols + c]).Max(c => score[c]);
                    Assert.True(prunedMax <= keptMin + 1e-5);
                }
        }
        Assert.Throws<PareException>(() => Magnitude.PruneRowGroups(new float[16 * 4], 4, 16, SparsityPattern.NM(2, 4), 2, new bool[64]));
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public void Cli_prunes_repacks_loads_and_unpacks_row_group_files(GgmlType type)
    {
        string model = TestModels.Get("gqa-untied", PruneTestSupport.Gqa, type), dir = PruneTestSupport.NewDir();
        string dense = Path.Combine(dir, "dense.gguf"), rg = Path.Combine(dir, "rg.gguf"), back = Path.Combine(dir, "back.gguf"), old = Path.Combine(dir, "old.gguf");
        var p = PareCli.Run("prune", model, "--method", "magnitude", "--sparsity", "0.5", "--row-group", "4", "-o", dense, "--json");
        Assert.True(p.ExitCode == 0, p.Stderr);
        Assert.Contains("row groups of 4", p.Json.GetProperty("pattern").GetString());
        var r = PareCli.Run("prune", dense, "--repack", "--row-group", "4", "-o", rg, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(21, r.Json.GetProperty("converted").GetInt32());
        Assert.True(new FileInfo(rg).Length < new FileInfo(dense).Length);
        using (var f = GgufFile.Open(rg)) Assert.Equal(RowGroupSparseMatrix.FormatValue, f.GetString(SparseMatrix.FormatKey));
        // The old bitmask layout still loads from the same dense file.
        var o = PareCli.Run("prune", dense, "--repack", "-o", old, "--json");
        Assert.True(o.ExitCode == 0, o.Stderr);
        var info = PareCli.Run("info", rg, "--json", "--tensors").Json;
        // Every block matrix is compact; the row-group layout where it is smaller than the dense one (its group headers
        // are 64 bytes: this model's smallest matrices, 16 x 64 with groups of 4, stay in the bitmask layout).
        var types = info.GetProperty("tensors").EnumerateArray().Select(t => t.GetProperty("type").GetString()).ToList();
        int rowGroups = types.Count(t => t == $"{type} compact row groups");
        Assert.True(rowGroups >= 6, string.Join(", ", types));
        Assert.Equal(21, rowGroups + types.Count(t => t == $"{type} compact"));

        int[] probe = [1, 5, 9, 200, 31, 7, 77, 3];
        float[] Logits(string path)
        {
            using var m = LlamaModel.Load(path);
            return m.CreateSession(new SessionOptions { Threads = 2 }).ForwardAll(probe);
        }
        var a = Logits(dense);
        var b = Logits(rg);
        var c = Logits(old);
        double scale = a.Max(Math.Abs);
        // F16: the same products summed in another order; Q8_0: weights re-rounded per 32 packed values.
        double tol = type == GgmlType.F16 ? 1e-3 * scale : 0.05 * scale;
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= tol, $"logit {i}: {b[i]} vs dense {a[i]}");
        Assert.Equal(a.Length, c.Length);

        var u = PareCli.Run("prune", rg, "--repack", "-o", back, "--json");
        Assert.True(u.ExitCode == 0, u.Stderr);
        Assert.Equal(21, u.Json.GetProperty("converted").GetInt32());
        using var fa = GgufFile.Open(dense);
        using var fb = GgufFile.Open(back);
        Assert.False(fb.Has(SparseMatrix.FormatKey));
        Assert.False(fb.Has(RowGroupSparseMatrix.GroupKey));
        foreach (var t in fa.Tensors)
        {
            var t2 = fb.GetTensor(t.Name);
            Assert.Equal(t.Type, t2.Type);
            Assert.Equal(t.Dims, t2.Dims);
            if (type == GgmlType.F16) Assert.True(fa.TensorBytes(t).SequenceEqual(fb.TensorBytes(t2)), t.Name);
        }
        // Row groups with a method that cannot share columns: a clear error, nothing written.
        var e = PareCli.Run("prune", model, "--method", "sparsegpt", "--row-group", "4", "--calib-random", "--samples", "2", "--seqlen", "16", "-o", Path.Combine(dir, "x.gguf"));
        Assert.Equal(1, e.ExitCode);
        Assert.Contains("--row-group works with magnitude and wanda only", e.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "x.gguf")));
    }
}
