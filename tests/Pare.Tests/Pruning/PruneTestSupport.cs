using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Models;
using Pare.Pruning;
using Pare.Tensors;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Pruning;

internal static class PruneTestSupport
{
    public static readonly LlamaConfig Gqa = TestModels.OracleShapes.Single(s => s.Name == "gqa-untied").Config;

    public static string NewDir() => Directory.CreateTempSubdirectory("pare-prune-").FullName;

    /// <summary>`pare ARGS` fails with one error line containing <paramref name="expected"/>, exit 1, and writes nothing into <paramref name="dir"/>.</summary>
    public static void RefusedWithoutFile(string dir, string expected, params string[] args)
    {
        var r = PareCli.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(dir));
    }

    public static PruneOptions Options(PruneMethod m, SparsityPattern p, int samples = 16, int seqLen = 32) =>
        new() { Method = m, Pattern = p, Samples = samples, SeqLen = seqLen, Seed = 3, Threads = 2 };

    /// <summary>Prunes into a cached output path (same settings, same file).</summary>
    public static string Pruned(string model, PruneOptions o, SparseStorage storage = SparseStorage.Dense)
    {
        string key = $"{Path.GetFileNameWithoutExtension(model)}-{o.Method}-{o.Pattern.ToString().Replace(' ', '_').Replace(':', 'o')}-{o.Samples}-{storage}";
        string path = Path.Combine(TestModels.Dir, key + ".gguf");
        lock (Cache)
        {
            if (!File.Exists(path)) Pruner.Run(model, path, o, new CalibrationSource.RandomTokens(), storage);
            return path;
        }
    }

    static readonly Lock Cache = new();

    /// <summary>A matrix from a GGUF file decoded to F32 (rows x cols).</summary>
    public static float[] ReadMatrix(GgufFile f, string name, out int rows, out int cols)
    {
        var t = f.GetTensor(name);
        cols = (int)t.Dims[0]; rows = (int)t.Dims[1];
        var m = f.Matrix(t);
        var data = new float[rows * cols];
        for (int r = 0; r < rows; r++) Dequant.Row(m.Type, m.Row(r), data.AsSpan(r * cols, cols));
        return data;
    }

    public static readonly string[] Linears = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    /// <summary>A copy of a GGUF without its tokenizer metadata.</summary>
    public static string WithoutTokenizer(string src, string dst)
    {
        using var f = GgufFile.Open(src);
        var w = new GgufWriter { Alignment = f.Alignment };
        foreach (var (k, v) in f.MetadataList) if (!k.StartsWith("tokenizer.", StringComparison.Ordinal)) w.Set(k, v);
        foreach (var t in f.Tensors) w.AddTensor(t.Name, t.Type, t.Dims, f.TensorBytes(t).ToArray());
        w.Write(dst);
        return dst;
    }

    public static double MaxRelDiff(float[] a, float[] b, int vocab)
    {
        double worst = 0;
        for (int p = 0; p < a.Length / vocab; p++)
        {
            double maxAbs = 0, maxDiff = 0;
            for (int i = 0; i < vocab; i++)
            {
                maxAbs = Math.Max(maxAbs, Math.Abs(a[p * vocab + i]));
                maxDiff = Math.Max(maxDiff, Math.Abs(a[p * vocab + i] - b[p * vocab + i]));
            }
            worst = Math.Max(worst, maxDiff / maxAbs);
        }
        return worst;
    }
}
