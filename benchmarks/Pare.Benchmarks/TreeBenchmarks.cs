using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Benchmarks;

/// <summary>
/// Attention of a token tree (n new tokens over a 200-position cache, pare-ref's shape: 8 heads, 4 K/V heads, head
/// size 32): the position-major kernel (<see cref="Attention"/>) against the blocked, transposed K cache the session
/// uses (<see cref="BlockedAttention"/>). `--filter *TreeAttention* --job short`.
/// </summary>
public class TreeAttentionBenchmarks
{
    const int Heads = 8, KvHeads = 4, HeadDim = 32, Pos0 = 200, Capacity = 512;

    [Params(1, 8, 16)]
    public int N { get; set; }

    float[] _q = [], _k = [], _v = [], _kBlocks = [], _out = [];
    int[] _parents = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        float[] R(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() - 0.5); return a; }
        _q = R(N * Heads * HeadDim);
        _k = R(Capacity * KvHeads * HeadDim);
        _v = R(Capacity * KvHeads * HeadDim);
        _kBlocks = new float[BlockedAttention.CacheFloats(Capacity, KvHeads, HeadDim)];
        BlockedAttention.WriteK(_k.AsSpan(0, (Pos0 + N) * KvHeads * HeadDim), Pos0 + N, KvHeads, HeadDim, _kBlocks, Capacity, 0);
        _out = new float[N * Heads * HeadDim];
        // A chain: every node's parent is the node before it.
        _parents = [.. Enumerable.Range(-1, N)];
    }

    [Benchmark(Baseline = true)]
    public void PositionMajor() => Attention.CausalGqa(_q, N, Heads, KvHeads, HeadDim, _k, _v, Pos0, _out, 2, _parents);

    [Benchmark]
    public void Blocked() => BlockedAttention.CausalGqa(_q, N, Heads, KvHeads, HeadDim, _kBlocks, Capacity, _v, Pos0, _out, 2, _parents);
}

/// <summary>
/// Products of a pare-ref-shaped F32 matrix (704 x 256, its ffn_gate) with the n tokens of a tree, 2 threads: F32
/// matrices this narrow multiply from their panel copy (<c>F32Panels</c>); a BF16 matrix of the same shape takes the
/// row-major small-batch kernel, for comparison. `--filter *TreeProduct* --job short`.
/// </summary>
public unsafe class TreeProductBenchmarks
{
    const int Rows = 704, Cols = 256;

    [Params(1, 2, 4, 8, 16)]
    public int N { get; set; }

    [Params(GgmlType.F32, GgmlType.BF16)]
    public GgmlType Type { get; set; }

    WeightMatrix? _w;
    byte* _data;
    float[] _x = [], _y = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var values = new float[Rows * Cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() - 0.5) * 0.1);
        var bytes = Quantizer.Quantize(Type, values);
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes.Length, 64);
        bytes.CopyTo(new Span<byte>(_data, bytes.Length));
        _w = new WeightMatrix("bench", Type, Rows, Cols, (nint)_data, bytes.Length);
        _x = new float[N * Cols];
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)(rng.NextDouble() - 0.5);
        _y = new float[N * Rows];
    }

    [GlobalCleanup]
    public void Cleanup() => NativeMemory.AlignedFree(_data);

    [Benchmark]
    public void MatMulRows() => MatMul.MatMulRows(_w!, _x, N, _y, 2);
}
