using Pare.Models.Bert;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Encoders;

/// <summary>
/// The pretrained encoders on Pare's engine against their oracles on 50 sentences of the corpus's test split:
/// ONNX Runtime on the package's own graph, llama.cpp on the GGUF Pare wrote, the package's tokenizer.
/// (The 1,000-sentence acceptance run is benchmarks/Pare.EncoderCheck, see docs/encoders.md.)
/// </summary>
public class BertOracleTests
{
    const int Sentences = 50;

    [Theory]
    [InlineData(EncoderModels.MiniLm)]
    [InlineData(EncoderModels.Arctic)]
    public void Embeddings_equal_onnx_runtimes(string name)
    {
        var model = EncoderModels.Model(name);
        var texts = EncoderModels.TestSentences(Sentences);
        var pare = model.Embed(texts, new EmbedOptions { Threads = 2, BatchSize = 16 });
        using var ort = new OrtEncoder(EncoderModels.Get(name).OnnxPath);
        var oracle = ort.Embed(pare.TokenIds, model.Config.Pooling);
        Assert.True(pare.TokenIds.Select(t => t.Length).Distinct().Count() > 20, "sentences of varied length");
        for (int i = 0; i < texts.Count; i++)
        {
            double cos = SentencePooling.Cosine(pare.Vectors[i], oracle[i]);
            Assert.True(cos >= 0.99999, $"sentence {i} ({pare.TokenIds[i].Length} tokens): cosine {cos:F7} to ONNX Runtime");
        }
    }

    [Theory]
    [InlineData(EncoderModels.MiniLm)]
    [InlineData(EncoderModels.Arctic)]
    public void Token_ids_equal_llama_cpps_on_the_gguf_pare_wrote(string name)
    {
        var model = EncoderModels.Model(name);
        using var cpp = new LlamaCppEncoder(EncoderModels.Gguf(name));
        foreach (var text in EncoderModels.TestSentences(Sentences))
            Assert.Equal(cpp.Tokenize(text), model.Tokenizer.Encode(text));
    }

    [Theory]
    [InlineData(EncoderModels.MiniLm)]
    [InlineData(EncoderModels.Arctic)]
    public void Embeddings_agree_with_llama_cpps_on_the_gguf_pare_wrote(string name)
    {
        var model = EncoderModels.Model(name);
        using var cpp = new LlamaCppEncoder(EncoderModels.Gguf(name));
        // llama.cpp does not truncate: compare inputs that fit the model's length.
        var texts = EncoderModels.TestSentences(Sentences).Where(t => !model.Tokenize(t).Truncated).Take(20).ToList();
        var pare = model.Embed(texts, new EmbedOptions { Threads = 2 });
        for (int i = 0; i < texts.Count; i++)
        {
            double cos = SentencePooling.Cosine(pare.Vectors[i], cpp.Embed(texts[i]));
            Assert.True(cos >= LlamaCppCosine, $"sentence {i}: cosine {cos:F7} to llama.cpp");
        }
    }

    /// <summary>llama.cpp's GELU is the tanh approximation (ggml_gelu), not BERT's erf form: close, not equal.</summary>
    const double LlamaCppCosine = 0.9999;

    /// <summary>
    /// The package tokenizer splits words only at spaces and at its own list of punctuation (all ASCII punctuation and the
    /// en dash) and does not strip accents, so it differs from BERT's basic tokenization on other characters (e.g. the
    /// em dash "—"); on everything else its ids are Pare's.
    /// </summary>
    [Theory]
    [InlineData(EncoderModels.MiniLm)]
    [InlineData(EncoderModels.Arctic)]
    public void Token_ids_equal_the_package_tokenizers_on_ascii_text(string name)
    {
        var model = EncoderModels.Model(name);
        int ascii = 0;
        foreach (var text in EncoderModels.TestSentences(Sentences))
        {
            var pare = model.Tokenizer.Encode(text);
            if (pare.Length > 512) continue; // the package cuts at 512 tokens without keeping [SEP]
            if (text.Any(ch => ch > 0x7F)) continue;
            ascii++;
            Assert.Equal(PackageTokenizer.Encode(name, text), pare);
        }
        Assert.True(ascii >= Sentences * 8 / 10, $"only {ascii} ASCII sentences");
    }

    [Theory]
    [InlineData(EncoderModels.MiniLm)]
    [InlineData(EncoderModels.Arctic)]
    public void Safetensors_and_gguf_exports_load_to_the_same_embeddings(string name)
    {
        var model = EncoderModels.Model(name);
        var texts = EncoderModels.TestSentences(8);
        var want = model.Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
        string dir = Path.Combine(EncoderModels.Get(name).Dir, "hf-export");
        BertFiles.SaveHf(model.Config, model.Tensors, model.Tokenizer.Vocab, dir);
        foreach (var path in new[] { dir, EncoderModels.Gguf(name) })
        {
            var loaded = BertModel.Load(path);
            Assert.Equal(model.Config, loaded.Config);
            var got = loaded.Embed(texts, new EmbedOptions { Threads = 2 }).Vectors;
            for (int i = 0; i < texts.Count; i++) Assert.Equal(want[i], got[i]);
        }
    }

    [Fact]
    public void Packed_batches_give_the_vectors_of_one_sentence_at_a_time()
    {
        var model = EncoderModels.Model(EncoderModels.MiniLm);
        var texts = EncoderModels.TestSentences(12);
        var batched = model.Embed(texts, new EmbedOptions { Threads = 2, BatchSize = 12 }).Vectors;
        var single = model.Embed(texts, new EmbedOptions { Threads = 1, BatchSize = 1 }).Vectors;
        for (int i = 0; i < texts.Count; i++) Assert.True(SentencePooling.Cosine(batched[i], single[i]) > 0.9999999);
    }

    [Fact]
    public void Import_reads_the_shape_and_head_of_both_packages()
    {
        foreach (var name in EncoderModels.Names)
        {
            var c = EncoderModels.Model(name).Config;
            Assert.Equal((30522, 384, 6, 12, 1536, 512, 2), (c.VocabSize, c.Dim, c.Layers, c.Heads, c.FfnDim, c.MaxPositions, c.TypeVocabSize));
            Assert.Equal(1e-12f, c.LayerNormEps);
            Assert.True(c.Normalize);
        }
        Assert.Equal((BertPooling.Mean, 256), (EncoderModels.Model(EncoderModels.MiniLm).Config.Pooling, EncoderModels.Model(EncoderModels.MiniLm).Config.SeqLimit));
        Assert.Equal((BertPooling.Cls, 512), (EncoderModels.Model(EncoderModels.Arctic).Config.Pooling, EncoderModels.Model(EncoderModels.Arctic).Config.SeqLimit));
    }
}
