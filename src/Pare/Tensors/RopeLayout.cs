namespace Pare.Tensors;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeLayout
{
    /// <summary>Adjacent pairs (x[2i], x[2i+1]): llama.cpp's "normal" mode, used by GGUF llama models.</summary>
    Interleaved,
    /// <summary>Half-split pairs (x[i], x[i + d/2]): Hugging Face checkpoints and Qwen2 ("neox" mode).</summary>
    HalfSplit,
}
