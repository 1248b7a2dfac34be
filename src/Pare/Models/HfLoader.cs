using Pare.Formats.Safetensors;
using Pare.Kernels;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>
/// Loads a Hugging Face Llama / Mistral / Qwen2 checkpoint (config.json + safetensors, sharded or not) into the
/// engine's <see cref="LlamaConfig"/> and <see cref="LlamaWeights"/>. Matrices stay zero-copy in the memory maps
/// (HF Linear weights are [out, in] row-major, the same layout as a GGUF row-major weight); norms and biases are
/// converted to F32. Every tensor's shape is checked against the config.
/// </summary>
/// <remarks>The tokenizer (tokenizer.json beside config.json) is loaded separately by the tokenizer code.</remarks>
public static class HfLoader
{
    /// <summary>
    /// Loads the checkpoint at <paramref name="pathOrDir"/>: a checkpoint directory, a <c>.safetensors</c> file or an
    /// index JSON file (config.json is read from the same directory). <c>Owner</c> holds the memory maps: dispose it
    /// after the last use of the weights.
    /// </summary>
    public static (LlamaConfig Config, LlamaWeights Weights, IDisposable Owner) Load(string pathOrDir)
    {
        string dir = Directory.Exists(pathOrDir) ? pathOrDir : Path.GetDirectoryName(Path.GetFullPath(pathOrDir))!;
        string configPath = Path.Combine(dir, HfConfig.FileName);
        var hf = HfConfig.Load(configPath);
        var config = hf.ToLlamaConfig(configPath);
        var ck = SafetensorsCheckpoint.Open(pathOrDir);
        try { return (config, Map(ck, config), ck); }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    /// <summary>Maps the HF tensor names of an open checkpoint onto the engine's weights, checking every shape.</summary>
    public static LlamaWeights Map(SafetensorsCheckpoint ck, LlamaConfig c)
    {
        // Checkpoints saved from the bare LlamaModel (not ...ForCausalLM) lack the "model." prefix.
        string pre = !ck.Contains("model.embed_tokens.weight") && ck.Contains("embed_tokens.weight") ? "" : "model.";

        WeightMatrix Mat(string name, int rows, int cols)
        {
            var (f, t) = ck.Get(name);
            if (t.Shape.Length != 2 || t.Shape[0] != rows || t.Shape[1] != cols)
                throw new InvalidModelException($"{f.Path}: tensor '{name}' has shape {Fmt(t.Shape)}, expected [{rows}, {cols}] from config.json");
            return f.Matrix(t);
        }
        float[] Vec(string name, int n)
        {
            var (f, t) = ck.Get(name);
            if (t.Shape.Length != 1 || t.Shape[0] != n)
                throw new InvalidModelException($"{f.Path}: tensor '{name}' has shape {Fmt(t.Shape)}, expected [{n}] from config.json");
            return f.Vector(t);
        }

        var layers = new LlamaLayerWeights[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string l = $"{pre}layers.{i}.";
            if (ck.Contains(l + "self_attn.o_proj.bias")) throw new InvalidModelException($"{ck.Path}: tensor '{l}self_attn.o_proj.bias' exists, but output-projection biases are not supported");
            layers[i] = new LlamaLayerWeights
            {
                AttnNorm = Vec(l + "input_layernorm.weight", c.Dim),
                Wq = Mat(l + "self_attn.q_proj.weight", c.QDim, c.Dim),
                Wk = Mat(l + "self_attn.k_proj.weight", c.KvDim, c.Dim),
                Wv = Mat(l + "self_attn.v_proj.weight", c.KvDim, c.Dim),
                Wo = Mat(l + "self_attn.o_proj.weight", c.Dim, c.QDim),
                Bq = c.QkvBias ? Vec(l + "self_attn.q_proj.bias", c.QDim) : null,
                Bk = c.QkvBias ? Vec(l + "self_attn.k_proj.bias", c.KvDim) : null,
                Bv = c.QkvBias ? Vec(l + "self_attn.v_proj.bias", c.KvDim) : null,
                FfnNorm = Vec(l + "post_attention_layernorm.weight", c.Dim),
                Gate = Mat(l + "mlp.gate_proj.weight", c.FfnDim, c.Dim),
                Up = Mat(l + "mlp.up_proj.weight", c.FfnDim, c.Dim),
                Down = Mat(l + "mlp.down_proj.weight", c.Dim, c.FfnDim),
            };
        }
        if (ck.Contains($"{pre}layers.{c.Layers}.input_layernorm.weight"))
            throw new InvalidModelException($"{ck.Path}: checkpoint has more layers than num_hidden_layers {c.Layers}");

        var embed = Mat(pre + "embed_tokens.weight", c.VocabSize, c.Dim);
        return new LlamaWeights
        {
            TokenEmbedding = embed,
            Layers = layers,
            OutputNorm = Vec(pre + "norm.weight", c.Dim),
            // Tied models may still carry a copy of lm_head.weight; transformers ignores it in favour of the embedding.
            Output = c.TiedEmbeddings ? embed : Mat("lm_head.weight", c.VocabSize, c.Dim),
        };
    }

    static string Fmt(long[] shape) => $"[{string.Join(", ", shape)}]";
}
