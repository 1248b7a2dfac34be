using Pare.Formats.Gguf;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Training;

/// <summary>One named parameter tensor inside the flat buffer: (Rows, Cols) row-major at Offset; Cols = 1 row for vectors.</summary>
public sealed record ParamInfo(string Name, long Offset, int Rows, int Cols, bool Decay)
{
    public long Length => (long)Rows * Cols;
}

/// <summary>The views of one block's parameters (offsets into the flat buffers); the shortcuts (d' x d') only in a
/// SliceGPT model (<see cref="LlamaConfig.Sliced"/>).</summary>
public sealed record LayerParams(ParamInfo AttnNorm, ParamInfo Wq, ParamInfo Wk, ParamInfo Wv, ParamInfo Wo,
    ParamInfo FfnNorm, ParamInfo Gate, ParamInfo Up, ParamInfo Down, ParamInfo? AttnShortcut = null, ParamInfo? FfnShortcut = null);

/// <summary>
/// All F32 master weights of a Llama model in one array, with a gradient array of the same layout. Names follow GGUF (token_embd, blk.N.attn_q, ...); shapes are (out, in).
/// Each block has its own widths when the config has per-layer shapes (a structured <c>deci</c> model: heads, KV heads
/// and FFN width per layer); a SliceGPT model (<see cref="LlamaConfig.Sliced"/>) adds each block's two shortcut
/// matrices (blk.N.attn_shortcut / ffn_shortcut, d' x d').
/// </summary>
public sealed class ParameterStore
{
    public LlamaConfig Config { get; }
    public IReadOnlyList<ParamInfo> All { get; }
    public ParamInfo TokenEmbedding { get; }   // (vocab, dim)
    public IReadOnlyList<LayerParams> Layers { get; }
    public ParamInfo OutputNorm { get; }        // (dim)
    public ParamInfo? Output { get; }           // (vocab, dim); null when tied to the embedding
    /// <summary>The weights.</summary>
    public float[] Values { get; }
    /// <summary>Gradients, same layout as <see cref="Values"/>.</summary>
    public float[] Grads { get; }

    public ParameterStore(LlamaConfig c)
    {
        Config = c;
        var all = new List<ParamInfo>();
        long offset = 0;
        ParamInfo Add(string name, int rows, int cols, bool decay)
        {
            var p = new ParamInfo(name, offset, rows, cols, decay);
            // Keep every tensor 64-byte aligned: the vector kernels load whole cache lines.
            offset += (p.Length + 15) / 16 * 16;
            all.Add(p);
            return p;
        }
        TokenEmbedding = Add("token_embd.weight", c.VocabSize, c.Dim, true);
        var layers = new List<LayerParams>();
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            int qd = c.QDimAt(l), kvd = c.KvDimAt(l), ffn = c.FfnAt(l);
            layers.Add(new LayerParams(
                Add(p + "attn_norm.weight", 1, c.Dim, false),
                Add(p + "attn_q.weight", qd, c.Dim, true),
                Add(p + "attn_k.weight", kvd, c.Dim, true),
                Add(p + "attn_v.weight", kvd, c.Dim, true),
                Add(p + "attn_output.weight", c.Dim, qd, true),
                Add(p + "ffn_norm.weight", 1, c.Dim, false),
                Add(p + "ffn_gate.weight", ffn, c.Dim, true),
                Add(p + "ffn_up.weight", ffn, c.Dim, true),
                Add(p + "ffn_down.weight", c.Dim, ffn, true),
                c.Sliced ? Add(p + "attn_shortcut.weight", c.Dim, c.Dim, true) : null,
                c.Sliced ? Add(p + "ffn_shortcut.weight", c.Dim, c.Dim, true) : null));
        }
        Layers = layers;
        OutputNorm = Add("output_norm.weight", 1, c.Dim, false);
        Output = c.TiedEmbeddings ? null : Add("output.weight", c.VocabSize, c.Dim, true);
        All = all;
        Values = new float[checked((int)offset)];
        Grads = new float[offset];
    }

    /// <summary>Number of trainable weights (the embedding counted once when tied).</summary>
    public long Count => All.Sum(p => p.Length);

    /// <summary>The output head: the untied output matrix or the embedding.</summary>
    public ParamInfo Head => Output ?? TokenEmbedding;

    public Span<float> Value(ParamInfo p) => Values.AsSpan((int)p.Offset, (int)p.Length);
    public Span<float> Grad(ParamInfo p) => Grads.AsSpan((int)p.Offset, (int)p.Length);

    /// <summary>
    /// GPT-2 style initialization: N(0, std) for matrices and the embedding, std / sqrt(2·layers) for the projections that
    /// write into the residual stream (attn_output, ffn_down), ones for norm weights. Each tensor draws from its own stream.
    /// </summary>
    public void Initialize(ulong seed, float std)
    {
        float residualStd = std / MathF.Sqrt(2f * Config.Layers);
        foreach (var p in All)
        {
            var v = Value(p);
            if (!p.Decay) { v.Fill(1f); continue; }
            float s = p.Name.EndsWith("attn_output.weight", StringComparison.Ordinal) || p.Name.EndsWith("ffn_down.weight", StringComparison.Ordinal) ? residualStd : std;
            var rng = new SplitMix64(seed ^ Fnv(p.Name));
            for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextGaussian() * s);
        }
    }

    public void ZeroGrads() => Array.Clear(Grads);

    /// <summary>
    /// Overwrites every weight with the tensor of the same name in a GGUF (an exported model of the same shape; F32, F16
    /// or BF16), to continue training from it (e.g. at a longer context). Any missing or differently shaped tensor is an error.
    /// </summary>
    public void LoadGguf(string path)
    {
        if (!File.Exists(path)) throw new PareException($"init_from: model not found: {path}");
        using var f = GgufFile.Open(path);
        foreach (var p in All)
        {
            if (!f.TryGetTensor(p.Name, out var t)) throw new PareException($"init_from {path}: no tensor '{p.Name}'");
            long rows = t.Dims.Length >= 2 ? t.Dims[1] : 1;
            if (t.Dims[0] != p.Cols || rows != p.Rows || t.ElementCount != p.Length)
                throw new PareException($"init_from {path}: tensor '{p.Name}' has shape {t.Shape}, the model [{p.Cols}, {p.Rows}]");
            if (t.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
                throw new PareException($"init_from {path}: tensor '{p.Name}' has type {t.Type}; expected F32, F16 or BF16");
            Pare.Kernels.Dequant.Row(t.Type, f.TensorBytes(t), Value(p));
        }
    }

    static ulong Fnv(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }
}
