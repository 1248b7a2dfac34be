using Pare.Tokenizers;

namespace Pare.Models.Bert;

/// <summary>Options of <see cref="BertModel.Embed"/>.</summary>
public sealed record EmbedOptions
{
    /// <summary>Kernel threads. Default: all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Sentences per forward pass (packed without padding). Default 32.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Token pruning/merging inside the forward pass (Pare.Pruning.Tokens). Default null: the dense encoder.</summary>
    public ITokenReducer? TokenReducer { get; init; }
    /// <summary>When given, records the rows each block processed (for FLOPs). Default null.</summary>
    public TokenTrace? Trace { get; init; }
}

/// <summary>What <see cref="BertModel.Embed"/> returns: one vector per input, and which inputs were truncated.</summary>
public sealed record EmbedResult(float[][] Vectors, int[][] TokenIds, IReadOnlyList<int> Truncated);

/// <summary>
/// A sentence-embedding BERT encoder on Pare's engine: WordPiece tokenizer, <see cref="BertEncoder"/>, pooling and
/// normalization as its sentence-transformers configuration says.
/// </summary>
public sealed class BertModel
{
    public BertConfig Config { get; }
    public BertTensors Tensors { get; }
    public WordPieceTokenizer Tokenizer { get; }
    public BertEncoder Encoder { get; }

    /// <param name="compact">Store the linear layers in Pare's compact sparse format (bitmask + packed non-zeros) and
    /// multiply them with its kernels: for pruned weights; the results equal the dense layout's up to float rounding.</param>
    public BertModel(BertConfig config, BertTensors tensors, IReadOnlyList<string> vocab, bool compact = false)
    {
        config.Validate("BERT model");
        Config = config;
        Tensors = tensors;
        Tokenizer = new WordPieceTokenizer(vocab, new WordPieceOptions { Lowercase = config.Lowercase });
        Encoder = new BertEncoder(config, new BertWeights(config, tensors, compact));
    }

    /// <summary>Loads a sentence-transformers folder, a llama.cpp <c>bert</c> GGUF, or an ONNX file with vocab.txt beside it.</summary>
    public static BertModel Load(string path)
    {
        var (c, t, vocab) = BertFiles.Load(path);
        return new BertModel(c, t, vocab);
    }

    /// <summary>Token ids as the model sees them: [CLS] pieces [SEP], truncated to <see cref="BertConfig.SeqLimit"/>.</summary>
    public (int[] Ids, bool Truncated) Tokenize(string text) => Tokenizer.EncodeForModel(text, Config.SeqLimit);

    /// <summary>Sentence vectors of <paramref name="texts"/>, in batches.</summary>
    public EmbedResult Embed(IReadOnlyList<string> texts, EmbedOptions? options = null, CancellationToken ct = default)
    {
        var o = options ?? new EmbedOptions();
        if (o.BatchSize < 1) throw new PareException($"batch size {o.BatchSize} must be at least 1");
        var ids = new int[texts.Count][];
        var truncated = new List<int>();
        for (int i = 0; i < texts.Count; i++)
        {
            (ids[i], bool cut) = Tokenize(texts[i]);
            if (cut) truncated.Add(i);
        }
        return new EmbedResult(EmbedIds(ids, o, ct), ids, truncated);
    }

    /// <summary>Sentence vectors of already tokenized inputs.</summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> ids, EmbedOptions? options = null, CancellationToken ct = default)
    {
        var o = options ?? new EmbedOptions();
        var result = new float[ids.Count][];
        for (int start = 0; start < ids.Count; start += o.BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            var batch = ids.Skip(start).Take(o.BatchSize).ToArray();
            var hidden = Encoder.Forward(batch, o.Threads, o.TokenReducer, o.Trace, ct);
            var vectors = SentencePooling.Pool(hidden, Config.Pooling, Config.Normalize);
            vectors.CopyTo(result, start);
        }
        return result;
    }
}
