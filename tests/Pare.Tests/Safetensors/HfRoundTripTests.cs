using Pare.Formats.Safetensors;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Tests.Safetensors;

public class HfRoundTripTests
{
    static void AssertSameRows(WeightMatrix expected, WeightMatrix actual, Func<int, int>? sourceRow = null)
    {
        Assert.Equal((expected.Type, expected.Rows, expected.Cols), (actual.Type, actual.Rows, actual.Cols));
        for (int r = 0; r < actual.Rows; r++)
            Assert.True(expected.Row(sourceRow?.Invoke(r) ?? r).SequenceEqual(actual.Row(r)), $"{actual.Name} row {r} differs");
    }

    static void AssertSameWeights(LlamaConfig c, LlamaWeights src, LlamaWeights got, bool permuted)
    {
        Func<int, int>? perm = permuted ? r => HfExporter.InterleavedRowOfHalfSplitRow(r, c.HeadDim) : null;
        float[]? P(float[]? v) => v == null ? null : permuted ? HfExporter.ToHalfSplit(v, c.HeadDim) : v;
        AssertSameRows(src.TokenEmbedding, got.TokenEmbedding);
        AssertSameRows(src.Output, got.Output);
        Assert.Equal(c.TiedEmbeddings, ReferenceEquals(got.Output, got.TokenEmbedding));
        Assert.Equal(src.OutputNorm, got.OutputNorm);
        Assert.Equal(src.Layers.Count, got.Layers.Count);
        for (int i = 0; i < src.Layers.Count; i++)
        {
            var (s, g) = (src.Layers[i], got.Layers[i]);
            Assert.Equal(s.AttnNorm, g.AttnNorm);
            Assert.Equal(s.FfnNorm, g.FfnNorm);
            AssertSameRows(s.Wq, g.Wq, perm);
            AssertSameRows(s.Wk, g.Wk, perm);
            AssertSameRows(s.Wv, g.Wv);
            AssertSameRows(s.Wo, g.Wo);
            AssertSameRows(s.Gate, g.Gate);
            AssertSameRows(s.Up, g.Up);
            AssertSameRows(s.Down, g.Down);
            Assert.Equal(P(s.Bq), g.Bq);
            Assert.Equal(P(s.Bk), g.Bk);
            Assert.Equal(s.Bv, g.Bv);
        }
    }

    [Theory]
    [InlineData(GgmlType.F32, false, false)]
    [InlineData(GgmlType.F16, false, true)]
    [InlineData(GgmlType.BF16, true, false)]
    [InlineData(GgmlType.F32, true, true)]
    public void HalfSplitModelRoundTripsBitExactly(GgmlType type, bool qwen2, bool tied)
    {
        var c = RandomModel.SmallConfig(RopeLayout.HalfSplit, qwen2, tied);
        using var m = new RandomModel(c, type, seed: 7);
        using var tmp = new TempDir();
        HfExporter.Export(c, m.Weights, tmp.Path);

        var (cfg, w, owner) = HfLoader.Load(tmp.Path);
        using (owner)
        {
            Assert.Equal(c, cfg);
            AssertSameWeights(c, m.Weights, w, permuted: false);
        }
        // The single file path works too (config.json is found beside it), and so does the expected dtype label.
        var (cfg2, _, owner2) = HfLoader.Load(tmp[HfExporter.WeightsFileName]);
        owner2.Dispose();
        Assert.Equal(c, cfg2);
        Assert.Contains(type switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" }, File.ReadAllText(tmp["config.json"]), StringComparison.Ordinal);
        using var f = SafetensorsFile.Open(tmp[HfExporter.WeightsFileName]);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(tied, !f.TryGetTensor("lm_head.weight", out _));
    }

    [Fact]
    public void InterleavedModelIsExportedWithPermutedQkRows()
    {
        var c = RandomModel.SmallConfig(RopeLayout.Interleaved);
        using var m = new RandomModel(c, GgmlType.F16, seed: 3);
        using var tmp = new TempDir();
        HfExporter.Export(c, m.Weights, tmp.Path);
        var (cfg, w, owner) = HfLoader.Load(tmp.Path);
        using (owner)
        {
            Assert.Equal(c with { RopeLayout = RopeLayout.HalfSplit }, cfg);
            AssertSameWeights(c, m.Weights, w, permuted: true);
        }
    }

    /// <summary>The exporter's row map is exactly the inverse of llama.cpp's numpy permute.</summary>
    [Theory]
    [InlineData(4, 8)]
    [InlineData(2, 64)]
    [InlineData(3, 2)]
    public void RowMapInvertsLlamaCppPermute(int heads, int headDim)
    {
        int n = heads * headDim, half = headDim / 2;
        // convert_hf_to_gguf.py: w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2).reshape(w.shape):
        // output index (h, j, s) in C order reads input index (h, s, j).
        var ggufFromHf = new int[n];
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
                for (int s = 0; s < 2; s++)
                    ggufFromHf[h * headDim + j * 2 + s] = h * headDim + s * half + j;
        for (int hfRow = 0; hfRow < n; hfRow++)
            Assert.Equal(hfRow, ggufFromHf[HfExporter.InterleavedRowOfHalfSplitRow(hfRow, headDim)]);
    }

    /// <summary>
    /// Interleaved RoPE on W_gguf·x and half-split RoPE on W_hf·x give the same rotated vectors up to the row
    /// relabelling, hence identical attention scores q·k: the exported model computes the same attention.
    /// </summary>
    [Theory]
    [InlineData(false, 10000f)]
    [InlineData(true, 1e6f)]
    public void HalfSplitRopeOnExportedWeightsMatchesInterleavedRopeOnSource(bool biases, float theta)
    {
        // Llama with q/k/v biases exports as qwen2; its biases must be permuted like the rows.
        var c = RandomModel.SmallConfig(RopeLayout.Interleaved) with { QkvBias = biases, RopeBase = theta };
        using var m = new RandomModel(c, GgmlType.F32, seed: 11);
        using var tmp = new TempDir();
        HfExporter.Export(c, m.Weights, tmp.Path);
        var (cfg, w, owner) = HfLoader.Load(tmp.Path);
        using var _ = owner;
        Assert.Equal(RopeLayout.HalfSplit, cfg.RopeLayout);
        Assert.Equal(biases ? "qwen2" : "llama", cfg.Architecture);

        var rng = new Random(5);
        int group = c.Heads / c.KvHeads;
        foreach (int pos in new[] { 0, 1, 7, 100, 4095 })
        {
            for (int layer = 0; layer < c.Layers; layer++)
            {
                var x = Enumerable.Range(0, c.Dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var (s, h) = (m.Weights.Layers[layer], w.Layers[layer]);
                var qg = RandomModel.MatVec(s.Wq, x, s.Bq);
                var kg = RandomModel.MatVec(s.Wk, x, s.Bk);
                var qh = RandomModel.MatVec(h.Wq, x, h.Bq);
                var kh = RandomModel.MatVec(h.Wk, x, h.Bk);
                OpsReference.Rope(qg, c.Heads, c.HeadDim, c.RopeDim, pos, c.RopeBase, RopeLayout.Interleaved);
                OpsReference.Rope(kg, c.KvHeads, c.HeadDim, c.RopeDim, pos, c.RopeBase, RopeLayout.Interleaved);
                OpsReference.Rope(qh, cfg.Heads, cfg.HeadDim, cfg.RopeDim, pos, cfg.RopeBase, cfg.RopeLayout);
                OpsReference.Rope(kh, cfg.KvHeads, cfg.HeadDim, cfg.RopeDim, pos, cfg.RopeBase, cfg.RopeLayout);

                for (int i = 0; i < qh.Length; i++)
                    Assert.Equal(qg[HfExporter.InterleavedRowOfHalfSplitRow(i, c.HeadDim)], qh[i], 1e-5f);
                for (int i = 0; i < kh.Length; i++)
                    Assert.Equal(kg[HfExporter.InterleavedRowOfHalfSplitRow(i, c.HeadDim)], kh[i], 1e-5f);
                for (int head = 0; head < c.Heads; head++)
                {
                    int kv = head / group;
                    float sg = OpsReference.Dot(qg.AsSpan(head * c.HeadDim, c.HeadDim), kg.AsSpan(kv * c.HeadDim, c.HeadDim));
                    float sh = OpsReference.Dot(qh.AsSpan(head * c.HeadDim, c.HeadDim), kh.AsSpan(kv * c.HeadDim, c.HeadDim));
                    Assert.Equal(sg, sh, 1e-5f);
                }
            }
        }
    }

    [Fact]
    public void QuantizedAndInconsistentModelsAreNotExported()
    {
        var c = RandomModel.SmallConfig();
        using var m = new RandomModel(c, GgmlType.F32);
        using var tmp = new TempDir();
        var q8 = new WeightMatrix("blk.0.attn_v.weight", GgmlType.Q8_0, c.KvDim, c.Dim, m.Weights.Layers[0].Wv.Data, (long)c.KvDim * (c.Dim / 32) * 34);
        var layers = m.Weights.Layers.ToArray();
        layers[0] = layers[0] with { Wv = q8 };
        var e = Assert.Throws<PareException>(() => HfExporter.Export(c, m.Weights with { Layers = layers }, tmp.Path));
        Assert.Contains("Q8_0", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<PareException>(() => HfExporter.Export(c with { RopeDim = 4 }, m.Weights, tmp.Path));
        Assert.Contains("rope dimension 4", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<PareException>(() => HfExporter.Export(c with { QkvBias = true }, m.Weights, tmp.Path));
        Assert.Contains("no q bias", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<PareException>(() => HfExporter.Export(c with { FfnDim = 64 }, m.Weights, tmp.Path));
        Assert.Contains("expected [64 x 32]", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(tmp.Path)); // failures leave nothing behind
    }

    [Fact]
    public void ShardedCheckpointLoads()
    {
        var c = RandomModel.SmallConfig(qwen2: true);
        using var m = new RandomModel(c, GgmlType.BF16, seed: 9);
        using var src = new TempDir();
        using var dst = new TempDir();
        HfExporter.Export(c, m.Weights, src.Path);
        Reshard(src, dst, keep: _ => true, shards: 3);
        var (cfg, w, owner) = HfLoader.Load(dst.Path);
        using (owner)
        {
            Assert.Equal(3, ((SafetensorsCheckpoint)owner).Files.Count);
            Assert.Equal(c, cfg);
            AssertSameWeights(c, m.Weights, w, permuted: false);
        }
    }

    /// <summary>Copies an exported checkpoint into <paramref name="shards"/> files with an index, dropping or adding tensors.</summary>
    static void Reshard(TempDir src, TempDir dst, Func<string, bool> keep, int shards = 1, Action<SafetensorsWriter>? extra = null)
    {
        File.Copy(src["config.json"], dst["config.json"]);
        using var f = SafetensorsFile.Open(src[HfExporter.WeightsFileName]);
        var writers = Enumerable.Range(0, shards).Select(_ => new SafetensorsWriter()).ToArray();
        var map = new List<string>();
        int k = 0;
        foreach (var t in f.Tensors.Where(t => keep(t.Name)))
        {
            int s = k++ % shards;
            writers[s].AddTensor(t.Name, t.DType, t.Shape, f.TensorBytes(t).ToArray());
            map.Add($"\"{t.Name}\": \"model-{s + 1:00000}-of-{shards:00000}.safetensors\"");
        }
        extra?.Invoke(writers[0]);
        for (int s = 0; s < shards; s++) writers[s].Write(dst[$"model-{s + 1:00000}-of-{shards:00000}.safetensors"]);
        if (shards > 1) File.WriteAllText(dst[SafetensorsCheckpoint.IndexFileName], "{\"metadata\": {}, \"weight_map\": {" + string.Join(", ", map) + "}}");
    }

    static void AssertLoadFails(string dir, string fragment)
    {
        var e = Assert.ThrowsAny<PareException>(() => HfLoader.Load(dir).Owner.Dispose());
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingExtraAndMisshapenTensorsAreNamed()
    {
        var c = RandomModel.SmallConfig(qwen2: true);
        using var m = new RandomModel(c, GgmlType.F32);
        using var src = new TempDir();
        HfExporter.Export(c, m.Weights, src.Path);

        foreach (var (drop, fragment) in new[]
        {
            ("model.layers.1.mlp.down_proj.weight", "missing tensor 'model.layers.1.mlp.down_proj.weight'"),
            ("model.layers.0.self_attn.k_proj.bias", "missing tensor 'model.layers.0.self_attn.k_proj.bias'"),
            ("model.norm.weight", "missing tensor 'model.norm.weight'"),
            ("lm_head.weight", "missing tensor 'lm_head.weight'"),
        })
        {
            using var dst = new TempDir();
            Reshard(src, dst, keep: n => n != drop);
            AssertLoadFails(dst.Path, fragment);
        }

        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: n => n != "model.layers.0.mlp.up_proj.weight",
                extra: w => w.AddTensor("model.layers.0.mlp.up_proj.weight", "F32", [c.Dim, c.FfnDim], new byte[c.Dim * c.FfnDim * 4]));
            AssertLoadFails(dst.Path, "'model.layers.0.mlp.up_proj.weight' has shape [32, 48], expected [48, 32]");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: n => n != "model.norm.weight", extra: w => w.AddTensor("model.norm.weight", "F32", [1, c.Dim], new byte[c.Dim * 4]));
            AssertLoadFails(dst.Path, "'model.norm.weight' has shape [1, 32], expected [32]");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: n => n != "model.layers.0.self_attn.q_proj.weight",
                extra: w => w.AddTensor("model.layers.0.self_attn.q_proj.weight", "I32", [c.QDim, c.Dim], new byte[c.QDim * c.Dim * 4]));
            AssertLoadFails(dst.Path, "dtype I32");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: _ => true, extra: w => w.AddF32("model.layers.0.self_attn.o_proj.bias", new float[c.Dim]));
            AssertLoadFails(dst.Path, "o_proj.bias");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: _ => true, extra: w => w.AddF32("model.layers.2.input_layernorm.weight", new float[c.Dim]));
            AssertLoadFails(dst.Path, "more layers than num_hidden_layers 2");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: _ => true);
            File.WriteAllText(dst["config.json"], File.ReadAllText(dst["config.json"]).Replace("\"vocab_size\": 40", "\"vocab_size\": 41", StringComparison.Ordinal));
            AssertLoadFails(dst.Path, "'model.embed_tokens.weight' has shape [40, 32], expected [41, 32]");
        }
        using (var dst = new TempDir())
        {
            Reshard(src, dst, keep: _ => true);
            File.Delete(dst["config.json"]);
            AssertLoadFails(dst.Path, "config file not found");
        }
    }

    [Fact]
    public void UnusedTensorsAndBarePrefixAreTolerated()
    {
        var c = RandomModel.SmallConfig();
        using var m = new RandomModel(c, GgmlType.F32);
        using var src = new TempDir();
        using var dst = new TempDir();
        HfExporter.Export(c, m.Weights, src.Path);
        // A checkpoint saved from the bare LlamaModel has no "model." prefix; old ones carry rotary inv_freq buffers.
        File.Copy(src["config.json"], dst["config.json"]);
        using (var f = SafetensorsFile.Open(src[HfExporter.WeightsFileName]))
        {
            var w = new SafetensorsWriter();
            foreach (var t in f.Tensors)
                w.AddTensor(t.Name.StartsWith("model.", StringComparison.Ordinal) ? t.Name[6..] : t.Name, t.DType, t.Shape, f.TensorBytes(t).ToArray());
            w.AddTensor("layers.0.self_attn.rotary_emb.inv_freq", "F32", [4], new byte[16]);
            w.AddTensor("position_ids", "I64", [1, 3], new byte[24]);
            w.Write(dst["model.safetensors"]);
        }
        var (cfg, weights, owner) = HfLoader.Load(dst.Path);
        using (owner)
        {
            Assert.Equal(c, cfg);
            AssertSameWeights(c, m.Weights, weights, permuted: false);
        }
    }
}
