using Pare.Formats.Safetensors;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>
/// Saves an engine model as a Hugging Face checkpoint: <c>model.safetensors</c> (matrices in their stored
/// F32 / F16 / BF16 type, norms and biases as F32) and <c>config.json</c>. A model with
/// <see cref="RopeLayout.Interleaved"/> RoPE (a GGUF llama) has its q/k rows permuted back to the HF half-split
/// layout, so <see cref="HfLoader"/> (half-split RoPE) reproduces its logits.
/// </summary>
public static class HfExporter
{
    public const string WeightsFileName = "model.safetensors";

    /// <summary>
    /// Writes <c>model.safetensors</c> and <c>config.json</c> into <paramref name="outDir"/> (created if needed).
    /// Quantized weights cannot be exported (<see cref="PareException"/>).
    /// </summary>
    public static void Export(LlamaConfig c, LlamaWeights w, string outDir)
    {
        c.Validate("export");
        if (c.Sliced) throw new PareException("export: a SliceGPT model (per-block shortcut rotations, RMS over the original width) has no Hugging Face llama equivalent; export the dense model");
        // HF llama / qwen2 rotate the whole head; a partial rotary dimension has no config.json field here.
        if (c.RopeDim != c.HeadDim) throw new PareException($"export: rope dimension {c.RopeDim} differs from head dimension {c.HeadDim}, which HF llama/qwen2 cannot express");
        if (w.Layers.Count != c.Layers) throw new PareException($"export: {w.Layers.Count} layers of weights for a {c.Layers}-layer config");
        if (!c.IsUniform || w.Layers.Any(l => l.Bo != null || l.BDown != null))
            throw new PareException("export: per-layer head counts / FFN widths or output biases (a structurally pruned model) have no HF llama config.json form");
        bool tied = c.TiedEmbeddings || ReferenceEquals(w.Output, w.TokenEmbedding);
        bool permute = c.RopeLayout == RopeLayout.Interleaved;

        var st = new SafetensorsWriter().SetMetadata("format", "pt"); // transformers refuses files without it
        AddMatrix(st, "model.embed_tokens.weight", w.TokenEmbedding, c.VocabSize, c.Dim, 0);
        for (int i = 0; i < c.Layers; i++)
        {
            var L = w.Layers[i];
            string p = $"model.layers.{i}.";
            st.AddF32(p + "input_layernorm.weight", Check(L.AttnNorm, c.Dim, p + "input_layernorm.weight"));
            AddMatrix(st, p + "self_attn.q_proj.weight", L.Wq, c.QDim, c.Dim, permute ? c.HeadDim : 0);
            AddMatrix(st, p + "self_attn.k_proj.weight", L.Wk, c.KvDim, c.Dim, permute ? c.HeadDim : 0);
            AddMatrix(st, p + "self_attn.v_proj.weight", L.Wv, c.KvDim, c.Dim, 0);
            AddMatrix(st, p + "self_attn.o_proj.weight", L.Wo, c.Dim, c.QDim, 0);
            if (c.QkvBias)
            {
                string bq = p + "self_attn.q_proj.bias", bk = p + "self_attn.k_proj.bias", bv = p + "self_attn.v_proj.bias";
                var q = Check(L.Bq ?? throw new PareException($"export: config has q/k/v biases but layer {i} has no q bias"), c.QDim, bq);
                var k = Check(L.Bk ?? throw new PareException($"export: config has q/k/v biases but layer {i} has no k bias"), c.KvDim, bk);
                var v = Check(L.Bv ?? throw new PareException($"export: config has q/k/v biases but layer {i} has no v bias"), c.KvDim, bv);
                // A bias is one more output row of the projection: permute it like the weight rows.
                st.AddF32(bq, permute ? ToHalfSplit(q, c.HeadDim) : q);
                st.AddF32(bk, permute ? ToHalfSplit(k, c.HeadDim) : k);
                st.AddF32(bv, v);
            }
            st.AddF32(p + "post_attention_layernorm.weight", Check(L.FfnNorm, c.Dim, p + "post_attention_layernorm.weight"));
            AddMatrix(st, p + "mlp.gate_proj.weight", L.Gate, c.FfnDim, c.Dim, 0);
            AddMatrix(st, p + "mlp.up_proj.weight", L.Up, c.FfnDim, c.Dim, 0);
            AddMatrix(st, p + "mlp.down_proj.weight", L.Down, c.Dim, c.FfnDim, 0);
        }
        st.AddF32("model.norm.weight", Check(w.OutputNorm, c.Dim, "model.norm.weight"));
        if (!tied) AddMatrix(st, "lm_head.weight", w.Output, c.VocabSize, c.Dim, 0);

        string dtype = w.TokenEmbedding.Type switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" };
        var hf = HfConfig.FromLlamaConfig(c with { TiedEmbeddings = tied }, dtype);

        Directory.CreateDirectory(outDir);
        st.Write(Path.Combine(outDir, WeightsFileName));
        File.WriteAllText(Path.Combine(outDir, HfConfig.FileName), hf.ToJson());
        // Tokenizer hook: tokenizer.json (+ tokenizer_config.json) belong beside these files. The tokenizer code
        // (HfTokenizerJson) will write them from the GGUF vocabulary; call it here with outDir once it exists.
    }

    /// <summary>
    /// The source row, in llama.cpp's interleaved order, of HF row <paramref name="hfRow"/> of a q/k projection.
    /// llama.cpp's convert_hf_to_gguf.py permutes HF rows with
    /// <c>w.reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2).reshape(w.shape)</c>: per head, HF row s·(d/2) + j
    /// (s ∈ {0, 1}, j &lt; d/2) lands at GGUF row 2j + s. So HF row s·(d/2) + j reads GGUF row 2j + s, which maps the
    /// half-split pair (j, j + d/2) onto the interleaved pair (2j, 2j + 1) with the same frequency θ^(-2j/d).
    /// </summary>
    public static int InterleavedRowOfHalfSplitRow(int hfRow, int headDim)
    {
        int half = headDim / 2;
        int head = hfRow / headDim, within = hfRow % headDim;
        int s = within / half, j = within % half;
        return head * headDim + 2 * j + s;
    }

    /// <summary>A per-row vector (bias) reordered from interleaved to half-split layout.</summary>
    public static float[] ToHalfSplit(ReadOnlySpan<float> v, int headDim)
    {
        var r = new float[v.Length];
        for (int i = 0; i < r.Length; i++) r[i] = v[InterleavedRowOfHalfSplitRow(i, headDim)];
        return r;
    }

    /// <summary>Adds a matrix; with <paramref name="permuteHeadDim"/> &gt; 0 its rows are written in half-split order.</summary>
    static void AddMatrix(SafetensorsWriter st, string name, WeightMatrix m, int rows, int cols, int permuteHeadDim)
    {
        if (m.Rows != rows || m.Cols != cols) throw new PareException($"export: '{name}' ({m.Name}) is [{m.Rows} x {m.Cols}], expected [{rows} x {cols}]");
        string dtype = SafetensorsDType.FromGgml(m.Type, m.Name);
        st.AddTensor(name, dtype, [rows, cols], s =>
        {
            for (int r = 0; r < rows; r++)
                s.Write(m.Row(permuteHeadDim > 0 ? InterleavedRowOfHalfSplitRow(r, permuteHeadDim) : r));
        });
    }

    static float[] Check(float[] v, int n, string name) =>
        v.Length == n ? v : throw new PareException($"export: '{name}' has {v.Length} values, expected {n}");
}
