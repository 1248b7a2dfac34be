using System.Text;
using Pare.Models;
using Pare.Tensors;

namespace Pare.Tests.Safetensors;

public class HfConfigTests
{
    static HfConfig Parse(string json) => HfConfig.Parse(Encoding.UTF8.GetBytes(json), "config.json");

    const string Llama = """
        {
          "architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 3,
          "num_attention_heads": 8, "vocab_size": 100, "rms_norm_eps": 1e-05,
          "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16", "rope_scaling": null
        }
        """;

    [Fact]
    public void LlamaDefaultsFollowTransformers()
    {
        var hf = Parse(Llama);
        var c = hf.ToLlamaConfig("config.json");
        Assert.Equal("llama", c.Architecture);
        Assert.Equal((64, 3, 8, 8, 8, 160, 100), (c.Dim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim, c.VocabSize));
        Assert.Equal(2048, c.ContextLength);
        Assert.Equal(10000f, c.RopeBase);
        Assert.Equal(8, c.RopeDim);
        Assert.Equal(RopeLayout.HalfSplit, c.RopeLayout);
        Assert.Equal(1e-5f, c.RmsEps);
        Assert.False(c.QkvBias);
        Assert.False(c.TiedEmbeddings);
        Assert.Equal(1, hf.BosTokenId);
        Assert.Equal([2], hf.EosTokenIds);
        Assert.Equal("float16", hf.TorchDtype);
    }

    [Fact]
    public void Qwen2HasBiasesAndSlidingWindowOnlyWhenEnabled()
    {
        var c = Parse("""
            {"model_type":"qwen2","hidden_size":64,"intermediate_size":160,"num_hidden_layers":2,"num_attention_heads":8,
             "num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":32768,"rope_theta":1000000.0,
             "rms_norm_eps":1e-06,"tie_word_embeddings":true,"use_sliding_window":false,"sliding_window":4096,
             "eos_token_id":[151643,151645]}
            """).ToLlamaConfig("q");
        Assert.Equal(("qwen2", true, true, 2, 32768), (c.Architecture, c.QkvBias, c.TiedEmbeddings, c.KvHeads, c.ContextLength));
        Assert.Equal(1e6f, c.RopeBase);
        Assert.Equal(1e-6f, c.RmsEps);
    }

    [Fact]
    public void MistralSlidingWindowLimitsTheContextAndHeadDimOverrides()
    {
        var c = Parse("""
            {"model_type":"mistral","hidden_size":64,"intermediate_size":160,"num_hidden_layers":2,"num_attention_heads":4,
             "num_key_value_heads":2,"head_dim":32,"vocab_size":100,"max_position_embeddings":32768,"sliding_window":4096,
             "rope_scaling":{"rope_type":"default"}}
            """).ToLlamaConfig("m");
        Assert.Equal(("llama", 4096, 32, 32), (c.Architecture, c.ContextLength, c.HeadDim, c.RopeDim));
        Assert.Equal(128, c.QDim);
    }

    [Fact]
    public void RopeParametersBlockIsRead()
    {
        var c = Parse(Llama.Replace("\"rope_scaling\": null", "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000.0}", StringComparison.Ordinal)).ToLlamaConfig("x");
        Assert.Equal(500000f, c.RopeBase);
    }

    [Theory]
    [InlineData("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "rope_scaling type 'llama3'")]
    [InlineData("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "type 'linear'")]
    [InlineData("\"rope_scaling\": null", "\"rope_scaling\": 3", "not an object")]
    [InlineData("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "model_type 'gpt2' is not supported")]
    [InlineData("\"model_type\": \"llama\",", "", "missing 'model_type'")]
    [InlineData("\"hidden_size\": 64,", "", "missing 'hidden_size'")]
    [InlineData("\"hidden_size\": 64", "\"hidden_size\": \"64\"", "'hidden_size' is \"64\", expected an integer")]
    [InlineData("\"hidden_size\": 64", "\"hidden_size\": 64.5", "expected an integer")]
    [InlineData("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": true", "expected a number")]
    [InlineData("\"rope_scaling\": null", "\"attention_bias\": true", "attention_bias")]
    [InlineData("\"rope_scaling\": null", "\"mlp_bias\": true", "mlp_bias")]
    [InlineData("\"rope_scaling\": null", "\"hidden_act\": \"gelu\"", "hidden_act 'gelu'")]
    [InlineData("\"rope_scaling\": null", "\"partial_rotary_factor\": 0.5", "partial_rotary_factor")]
    [InlineData("\"rope_scaling\": null", "\"num_key_value_heads\": 3", "KV head count 3")]
    [InlineData("\"num_attention_heads\": 8", "\"num_attention_heads\": 0", "out of range")]
    [InlineData("\"hidden_size\": 64", "\"hidden_size\": 99999999", "embedding length")]
    [InlineData("{", "[", "not valid JSON")]
    [InlineData("}", "", "not valid JSON")]
    public void BadConfigsAreRejectedWithOneLineMessages(string find, string replace, string fragment)
    {
        string json = Llama.Replace(find, replace, StringComparison.Ordinal);
        Assert.NotEqual(Llama, json);
        var e = Assert.ThrowsAny<PareException>(() => Parse(json).ToLlamaConfig("config.json"));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NonObjectIsRejected() =>
        Assert.Contains("not a JSON object", Assert.Throws<InvalidModelException>(() => Parse("[1, 2]")).Message, StringComparison.Ordinal);

    [Fact]
    public void InvalidUtf8IsRejected()
    {
        var bytes = Encoding.UTF8.GetBytes(Llama.Replace("LlamaForCausalLM", "Llama\u00e9", StringComparison.Ordinal));
        bytes[Array.IndexOf(bytes, (byte)0xC3)] = 0xFF;
        Assert.Throws<InvalidModelException>(() => HfConfig.Parse(bytes, "c"));
    }

    [Fact]
    public void WrittenConfigReadsBackToTheSameEngineConfig()
    {
        foreach (var c in new[]
        {
            RandomModel.SmallConfig(),
            RandomModel.SmallConfig(qwen2: true, tied: true) with { RopeBase = 1e6f, RmsEps = 1e-6f, ContextLength = 32768 },
        })
        {
            var json = HfConfig.FromLlamaConfig(c, "float32").ToJson();
            Assert.Equal(c, Parse(json).ToLlamaConfig("rt"));
        }
    }
}
