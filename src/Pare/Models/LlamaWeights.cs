using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>The weights of one decoder block. Matrices are [out rows x in cols]; heads and ffn are this layer's (per-layer in deci files).</summary>
public sealed record LlamaLayerWeights
{
    public required float[] AttnNorm { get; init; }   // (dim)
    public required WeightMatrix Wq { get; init; }      // (heads * head_dim, dim)
    public required WeightMatrix Wk { get; init; }      // (kv_heads * head_dim, dim)
    public required WeightMatrix Wv { get; init; }      // (kv_heads * head_dim, dim)
    public required WeightMatrix Wo { get; init; }      // (dim, heads * head_dim)
    public float[]? Bq { get; init; }                   // (heads * head_dim), Qwen2 only
    public float[]? Bk { get; init; }                   // (kv_heads * head_dim)
    public float[]? Bv { get; init; }                   // (kv_heads * head_dim)
    public float[]? Bo { get; init; }                   // (dim), structured pruning's bias compensation (FLAP)
    public required float[] FfnNorm { get; init; }    // (dim)
    public required WeightMatrix Gate { get; init; }    // (ffn, dim)
    public required WeightMatrix Up { get; init; }      // (ffn, dim)
    public required WeightMatrix Down { get; init; }    // (dim, ffn)
    public float[]? BDown { get; init; }                // (dim), structured pruning's bias compensation (FLAP)
    public WeightMatrix? AttnShortcut { get; init; }    // (dim, dim), SliceGPT: residual from the block input's basis to the mid-block basis
    public WeightMatrix? FfnShortcut { get; init; }     // (dim, dim), SliceGPT: residual from the mid-block basis to the block output's basis
}

/// <summary>All weights of a Llama-family decoder, pointing into the model file's memory map.</summary>
public sealed record LlamaWeights
{
    public required WeightMatrix TokenEmbedding { get; init; } // (vocab, dim)
    public required IReadOnlyList<LlamaLayerWeights> Layers { get; init; }
    public required float[] OutputNorm { get; init; }          // (dim)
    public required WeightMatrix Output { get; init; }         // (vocab, dim); the embedding itself when tied
}
