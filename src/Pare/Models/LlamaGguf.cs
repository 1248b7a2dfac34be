using Pare.Formats.Gguf;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>The GGUF metadata of a Llama-family model, as llama.cpp reads it (the inverse of <see cref="GgufLoader"/>).</summary>
public static class LlamaGguf
{
    /// <summary>Writes general.* and the {arch}.* hyper-parameter keys of <paramref name="c"/>.</summary>
    public static void WriteConfig(GgufWriter w, LlamaConfig c, string name, GgmlType weightType)
    {
        string a = c.Architecture;
        w.Set("general.architecture", a);
        w.Set("general.name", name);
        // llama_ftype numbers of the weight type (mostly F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 7, BF16 = 32).
        w.Set("general.file_type", weightType switch { GgmlType.F16 => 1u, GgmlType.Q4_0 => 2u, GgmlType.Q8_0 => 7u, GgmlType.BF16 => 32u, _ => 0u });
        w.Set($"{a}.vocab_size", (uint)c.VocabSize);
        w.Set($"{a}.context_length", (uint)c.ContextLength);
        w.Set($"{a}.embedding_length", (uint)c.Dim);
        w.Set($"{a}.block_count", (uint)c.Layers);
        w.Set($"{a}.feed_forward_length", (uint)c.FfnDim);
        w.Set($"{a}.attention.head_count", (uint)c.Heads);
        w.Set($"{a}.attention.head_count_kv", (uint)c.KvHeads);
        w.Set($"{a}.attention.key_length", (uint)c.HeadDim);
        w.Set($"{a}.attention.value_length", (uint)c.HeadDim);
        w.Set($"{a}.rope.dimension_count", (uint)c.RopeDim);
        w.Set($"{a}.rope.freq_base", c.RopeBase);
        w.Set($"{a}.attention.layer_norm_rms_epsilon", c.RmsEps);
    }
}
