using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Tests.Safetensors;

/// <summary>
/// A Llama-family model with random weights in native memory it owns: matrices as F32, F16 or BF16
/// <see cref="WeightMatrix"/>es, norms near 1, optional q/k/v biases. Dispose frees the memory.
/// </summary>
public sealed unsafe class RandomModel : IDisposable
{
    readonly List<nint> _blocks = [];
    readonly Random _rng;
    readonly GgmlType _type;

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }

    public RandomModel(LlamaConfig config, GgmlType type = GgmlType.F32, int seed = 1)
    {
        Config = config;
        _type = type;
        _rng = new Random(seed);
        var c = config;
        var layers = new List<LlamaLayerWeights>();
        for (int i = 0; i < c.Layers; i++)
        {
            layers.Add(new LlamaLayerWeights
            {
                AttnNorm = Norm(c.Dim),
                Wq = Matrix($"blk.{i}.attn_q.weight", c.QDim, c.Dim),
                Wk = Matrix($"blk.{i}.attn_k.weight", c.KvDim, c.Dim),
                Wv = Matrix($"blk.{i}.attn_v.weight", c.KvDim, c.Dim),
                Wo = Matrix($"blk.{i}.attn_output.weight", c.Dim, c.QDim),
                Bq = c.QkvBias ? Values(c.QDim) : null,
                Bk = c.QkvBias ? Values(c.KvDim) : null,
                Bv = c.QkvBias ? Values(c.KvDim) : null,
                FfnNorm = Norm(c.Dim),
                Gate = Matrix($"blk.{i}.ffn_gate.weight", c.FfnDim, c.Dim),
                Up = Matrix($"blk.{i}.ffn_up.weight", c.FfnDim, c.Dim),
                Down = Matrix($"blk.{i}.ffn_down.weight", c.Dim, c.FfnDim),
            });
        }
        var embed = Matrix("token_embd.weight", c.VocabSize, c.Dim);
        Weights = new LlamaWeights
        {
            TokenEmbedding = embed,
            Layers = layers,
            OutputNorm = Norm(c.Dim),
            Output = c.TiedEmbeddings ? embed : Matrix("output.weight", c.VocabSize, c.Dim),
        };
    }

    /// <summary>A small GQA shape: 2 layers, dim 32, 4 heads of 8, 2 KV heads, ffn 48, vocab 40.</summary>
    public static LlamaConfig SmallConfig(RopeLayout layout = RopeLayout.HalfSplit, bool qwen2 = false, bool tied = false) => new()
    {
        Architecture = qwen2 ? "qwen2" : "llama",
        Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8, FfnDim = 48, VocabSize = 40,
        ContextLength = 128, RopeBase = 10000f, RopeDim = 8, RopeLayout = layout, RmsEps = 1e-5f,
        QkvBias = qwen2, TiedEmbeddings = tied,
    };

    float[] Values(int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(_rng.NextDouble() * 2 - 1);
        return a;
    }

    float[] Norm(int n)
    {
        var a = Values(n);
        for (int i = 0; i < n; i++) a[i] = 1 + 0.1f * a[i];
        return a;
    }

    WeightMatrix Matrix(string name, int rows, int cols)
    {
        var v = Values(rows * cols);
        long bytes = GgmlTypeInfo.RowBytes(_type, cols) * rows;
        var p = (byte*)NativeMemory.Alloc((nuint)bytes);
        _blocks.Add((nint)p);
        switch (_type)
        {
            case GgmlType.F32: v.CopyTo(new Span<float>(p, v.Length)); break;
            case GgmlType.F16: { var h = new Span<Half>(p, v.Length); for (int i = 0; i < v.Length; i++) h[i] = (Half)v[i]; break; }
            case GgmlType.BF16: { var h = new Span<ushort>(p, v.Length); for (int i = 0; i < v.Length; i++) h[i] = (ushort)(BitConverter.SingleToUInt32Bits(v[i]) >> 16); break; }
            default: throw new ArgumentException($"RandomModel cannot make {_type} weights");
        }
        return new WeightMatrix(name, _type, rows, cols, (nint)p, bytes);
    }

    /// <summary>Row r of an F32, F16 or BF16 matrix as floats.</summary>
    public static float[] RowF32(WeightMatrix m, int r)
    {
        var bytes = m.Row(r);
        var dst = new float[m.Cols];
        for (int i = 0; i < dst.Length; i++)
            dst[i] = m.Type switch
            {
                GgmlType.F32 => BitConverter.ToSingle(bytes.Slice(4 * i, 4)),
                GgmlType.F16 => (float)BitConverter.ToHalf(bytes.Slice(2 * i, 2)),
                GgmlType.BF16 => BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(bytes.Slice(2 * i, 2)) << 16),
                _ => throw new ArgumentException($"no row reader for {m.Type}"),
            };
        return dst;
    }

    /// <summary>y = W x (+ b), accumulated in double.</summary>
    public static float[] MatVec(WeightMatrix m, ReadOnlySpan<float> x, float[]? bias = null)
    {
        var y = new float[m.Rows];
        for (int r = 0; r < m.Rows; r++)
        {
            var row = RowF32(m, r);
            double s = bias?[r] ?? 0;
            for (int c = 0; c < row.Length; c++) s += (double)row[c] * x[c];
            y[r] = (float)s;
        }
        return y;
    }

    public void Dispose()
    {
        foreach (var p in _blocks) NativeMemory.Free((void*)p);
        _blocks.Clear();
    }
}

/// <summary>A temporary directory removed on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("pare-st-").FullName;
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
