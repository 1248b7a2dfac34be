using System.Runtime.InteropServices;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models.Bert;

/// <summary>
/// One encoder block's weights: linear layers as F32 <see cref="WeightMatrix"/> [out, in], vectors as arrays. The query,
/// key and value projections are stacked into one (3D, D) matrix: one product per block instead of three.
/// </summary>
public sealed record BertLayerWeights(
    WeightMatrix Wqkv, float[] Bqkv,
    WeightMatrix Wo, float[] Bo, float[] AttnNormW, float[] AttnNormB,
    WeightMatrix Up, float[] BUp, WeightMatrix Down, float[] BDown, float[] OutNormW, float[] OutNormB);

/// <summary>
/// The weights the forward pass reads, built from <see cref="BertTensors"/>: matrices live in pinned F32 arrays so the
/// decoder engine's kernels (<see cref="Kernels.MatMul"/>) multiply them in place; with <c>compact</c>, the linear
/// layers are stored in Pare's compact sparse format instead (<see cref="Kernels.Sparse.SparseMatrix"/>: bitmask + packed
/// F32 non-zeros, bit-identical values) and the products run on its kernels.
/// </summary>
public sealed class BertWeights
{
    readonly List<float[]> _pinned = []; // keeps the matrices' memory alive
    readonly List<byte[]> _pinnedBytes = [];

    public float[] WordEmbeddings { get; }
    public float[] PositionEmbeddings { get; }
    public float[] TokenTypeEmbeddings { get; }
    public float[] EmbNormW { get; }
    public float[] EmbNormB { get; }
    public IReadOnlyList<BertLayerWeights> Layers { get; }

    readonly bool _compact;

    /// <summary>Whether the linear layers are in the compact sparse format.</summary>
    public bool Compact => _compact;

    public BertWeights(BertConfig c, BertTensors t, bool compact = false)
    {
        _compact = compact;
        if (compact && (c.Dim % 32 != 0 || c.FfnDim % 32 != 0)) throw new PareException($"the compact sparse format needs hidden and FFN sizes that are multiples of 32 (got {c.Dim}, {c.FfnDim})");
        t.Validate(c, "BERT weights");
        WordEmbeddings = t.Get("embeddings.word_embeddings.weight");
        PositionEmbeddings = t.Get("embeddings.position_embeddings.weight");
        TokenTypeEmbeddings = t.Get("embeddings.token_type_embeddings.weight");
        EmbNormW = t.Get("embeddings.LayerNorm.weight");
        EmbNormB = t.Get("embeddings.LayerNorm.bias");
        var layers = new List<BertLayerWeights>();
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"encoder.layer.{i}.";
            layers.Add(new BertLayerWeights(
                Matrix(p + "attention.self.qkv", [.. new[] { "query", "key", "value" }.Select(n => (t.Get(p + $"attention.self.{n}.weight"), (int)t.Shape(p + $"attention.self.{n}.weight")[0]))], c.Dim),
                [.. t.Get(p + "attention.self.query.bias"), .. t.Get(p + "attention.self.key.bias"), .. t.Get(p + "attention.self.value.bias")],
                Matrix(t, p + "attention.output.dense.weight"), t.Get(p + "attention.output.dense.bias"),
                t.Get(p + "attention.output.LayerNorm.weight"), t.Get(p + "attention.output.LayerNorm.bias"),
                Matrix(t, p + "intermediate.dense.weight"), t.Get(p + "intermediate.dense.bias"),
                Matrix(t, p + "output.dense.weight"), t.Get(p + "output.dense.bias"),
                t.Get(p + "output.LayerNorm.weight"), t.Get(p + "output.LayerNorm.bias")));
        }
        Layers = layers;
    }

    /// <summary>A block's linear layers packed for <see cref="Kernels.F32Gemm"/> (weights with their biases).</summary>
    internal sealed record PackedLayer(Kernels.F32GemmWeights Qkv, Kernels.F32GemmWeights O, Kernels.F32GemmWeights Up, Kernels.F32GemmWeights Down);

    PackedLayer?[]? _packed;

    /// <summary>
    /// Block <paramref name="l"/>'s linear layers packed for the encoder GEMM, built on first use (a copy: 7 MB a block
    /// for MiniLM); null where that kernel does not run (compact sparse layers, no AVX-512).
    /// </summary>
    internal PackedLayer? Packed(int l)
    {
        if (_compact || !Kernels.F32Gemm.Supported) return null;
        var all = LazyInitializer.EnsureInitialized(ref _packed, () => new PackedLayer?[Layers.Count]);
        return all[l] ?? LazyInitializer.EnsureInitialized(ref all[l], () =>
        {
            var L = Layers[l];
            return new PackedLayer(Kernels.F32GemmWeights.Pack(L.Wqkv, L.Bqkv), Kernels.F32GemmWeights.Pack(L.Wo, L.Bo),
                Kernels.F32GemmWeights.Pack(L.Up, L.BUp), Kernels.F32GemmWeights.Pack(L.Down, L.BDown));
        });
    }

    WeightMatrix Matrix(BertTensors t, string name)
    {
        var shape = t.Shape(name);
        return Matrix(name, [(t.Get(name), (int)shape[0])], (int)shape[1]);
    }

    /// <summary>Row blocks stacked into one pinned F32 matrix of <paramref name="cols"/> columns.</summary>
    WeightMatrix Matrix(string name, (float[] Data, int Rows)[] parts, int cols)
    {
        int rows = parts.Sum(p => p.Rows);
        var pinned = GC.AllocateUninitializedArray<float>(rows * cols, pinned: true);
        int at = 0;
        foreach (var (data, r) in parts) { data.AsSpan(0, r * cols).CopyTo(pinned.AsSpan(at)); at += r * cols; }
        if (_compact)
        {
            var blob = Kernels.Sparse.SparseMatrix.Encode(GgmlType.F32, rows, cols, MemoryMarshal.AsBytes(pinned.AsSpan()));
            var held = GC.AllocateUninitializedArray<byte>(blob.Length, pinned: true);
            blob.CopyTo(held, 0);
            _pinnedBytes.Add(held);
            nint address = Marshal.UnsafeAddrOfPinnedArrayElement(held, 0);
            return new WeightMatrix(name, rows, cols, Kernels.Sparse.SparseMatrix.Open(name, address, held.Length, rows, cols));
        }
        _pinned.Add(pinned);
        return new WeightMatrix(name, GgmlType.F32, rows, cols, Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0), (long)pinned.Length * 4);
    }
}
