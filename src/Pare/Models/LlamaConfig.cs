using Pare.Tensors;

namespace Pare.Models;

/// <summary>Shape and hyper-parameters of a Llama-family decoder (Llama, Mistral, Qwen2).</summary>
public sealed record LlamaConfig
{
    /// <summary>"llama" or "qwen2" (GGUF general.architecture).</summary>
    public string Architecture { get; init; } = "llama";
    /// <summary>Model width (embedding length).</summary>
    public int Dim { get; init; }
    public int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public int KvHeads { get; init; }
    /// <summary>Width of one head; usually Dim / Heads.</summary>
    public int HeadDim { get; init; }
    /// <summary>Hidden width of the SwiGLU feed-forward block.</summary>
    public int FfnDim { get; init; }
    public int VocabSize { get; init; }
    /// <summary>Training context length (the KV cache defaults to it).</summary>
    public int ContextLength { get; init; } = 2048;
    /// <summary>RoPE base (theta), 10000 in Llama-2.</summary>
    public float RopeBase { get; init; } = 10000f;
    /// <summary>Dimensions of each head that RoPE rotates (usually all of HeadDim).</summary>
    public int RopeDim { get; init; }
    public RopeLayout RopeLayout { get; init; } = RopeLayout.Interleaved;
    public float RmsEps { get; init; } = 1e-5f;
    /// <summary>Whether q/k/v projections carry biases (Qwen2).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Whether the output head reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>Per-layer query heads (llama.cpp's heterogeneous <c>deci</c> files, structured pruning); null = <see cref="Heads"/>
    /// in every layer. When set, <see cref="Heads"/>, <see cref="KvHeads"/> and <see cref="FfnDim"/> are the largest layer's.</summary>
    public int[]? LayerHeads { get; init; }
    /// <summary>Per-layer key/value heads; null = <see cref="KvHeads"/> in every layer.</summary>
    public int[]? LayerKvHeads { get; init; }
    /// <summary>Per-layer feed-forward widths; null = <see cref="FfnDim"/> in every layer.</summary>
    public int[]? LayerFfn { get; init; }

    /// <summary>SliceGPT files (architecture <c>slicegpt</c>): the width every RMS norm divides the sum of squares by, the
    /// original model width D, while the residual stream has only <see cref="Dim"/> = d' dimensions; null = <see cref="Dim"/>.</summary>
    public int? NormWidth { get; init; }
    /// <summary>Whether this is a SliceGPT model (rotated, sliced residual stream with per-block shortcut matrices).</summary>
    public bool Sliced => NormWidth != null;

    /// <summary>Largest query width of any layer (scratch sizes).</summary>
    public int QDim => Heads * HeadDim;
    /// <summary>Largest key/value width of any layer (scratch sizes).</summary>
    public int KvDim => KvHeads * HeadDim;

    public int HeadsAt(int layer) => LayerHeads?[layer] ?? Heads;
    public int KvHeadsAt(int layer) => LayerKvHeads?[layer] ?? KvHeads;
    public int FfnAt(int layer) => LayerFfn?[layer] ?? FfnDim;
    public int QDimAt(int layer) => HeadsAt(layer) * HeadDim;
    public int KvDimAt(int layer) => KvHeadsAt(layer) * HeadDim;
    /// <summary>Every layer has the same shape (no per-layer arrays, or arrays whose entries are all equal).</summary>
    public bool IsUniform => Enumerable.Range(0, Layers).All(l => HeadsAt(l) == Heads && KvHeadsAt(l) == KvHeads && FfnAt(l) == FfnDim);

    /// <summary>Checks that the shape is self-consistent and not absurd; throws <see cref="InvalidModelException"/>.</summary>
    public void Validate(string source)
    {
        void Check(bool ok, string what) { if (!ok) throw new InvalidModelException($"{source}: {what}"); }
        Check(Dim is > 0 and <= 1 << 16, $"embedding length {Dim} is out of range");
        Check(Layers is > 0 and <= 1024, $"block count {Layers} is out of range");
        Check(Heads is > 0 and <= 1024, $"head count {Heads} is out of range");
        Check(LayerHeads != null || (KvHeads > 0 && KvHeads <= Heads && Heads % KvHeads == 0), $"KV head count {KvHeads} must divide head count {Heads}");
        foreach (var (arr, what) in new[] { (LayerHeads, "head_count"), (LayerKvHeads, "head_count_kv"), (LayerFfn, "feed_forward_length") })
            Check(arr == null || arr.Length == Layers, $"per-layer {what} has {arr?.Length} entries for {Layers} blocks");
        for (int l = 0; l < Layers; l++)
        {
            int h = HeadsAt(l), kv = KvHeadsAt(l), f = FfnAt(l);
            // Attention-free or FFN-free layers (deci's Nemotron variants) are not run by Pare.
            Check(h is > 0 and <= 1024 && h <= Heads, $"block {l}: head count {h} is out of range (Pare runs layers with at least one head)");
            Check(kv > 0 && kv <= h && h % kv == 0 && kv <= KvHeads, $"block {l}: KV head count {kv} must divide head count {h}");
            Check(f > 0 && f <= FfnDim, $"block {l}: feed-forward length {f} is out of range");
        }
        Check(HeadDim is > 0 and <= 1024 && HeadDim % 2 == 0, $"head dimension {HeadDim} is out of range or odd");
        Check(RopeDim > 0 && RopeDim <= HeadDim && RopeDim % 2 == 0, $"rope dimension {RopeDim} must be even and at most the head dimension {HeadDim}");
        Check(FfnDim is > 0 and <= 1 << 20, $"feed-forward length {FfnDim} is out of range");
        Check(VocabSize is > 0 and <= 1 << 22, $"vocabulary size {VocabSize} is out of range");
        Check(ContextLength is > 0 and <= 1 << 24, $"context length {ContextLength} is out of range");
        Check(RopeBase > 0 && float.IsFinite(RopeBase), $"rope base {RopeBase} is invalid");
        Check(NormWidth == null || (NormWidth >= Dim && NormWidth <= 1 << 16), $"RMS norm width {NormWidth} must be at least the embedding length {Dim}");
        Check(RmsEps > 0 && RmsEps < 1, $"RMS norm epsilon {RmsEps} is invalid");
    }
}
