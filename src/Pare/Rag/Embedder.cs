using Pare.Models.Bert;

namespace Pare.Rag;

/// <summary>
/// The encoder as the retrieval pipeline uses it: sentence vectors (the model's pooling, unit length), and joint passes
/// over question + passage whose token states are pooled per sentence (the cross-encoder pass of Provence).
/// Counts the forward passes and tokens it runs, for the cost columns of the evaluation.
/// </summary>
public sealed class Embedder(BertModel model, int threads = 1)
{
    public BertModel Model { get; } = model;
    public int Threads { get; } = threads;
    /// <summary>Inputs (sequences) encoded so far.</summary>
    public long Sequences { get; private set; }
    /// <summary>Tokens encoded so far (before any token pruning inside the encoder).</summary>
    public long Tokens { get; private set; }

    public int Dim => Model.Config.Dim;

    // Sentence vectors already computed (pruners called at several budgets embed the same sentences).
    readonly Dictionary<string, float[]> _cache = new(StringComparer.Ordinal);

    /// <summary>WordPiece pieces of a text without [CLS]/[SEP].</summary>
    public int[] Pieces(string text) => Model.Tokenizer.Encode(text, addSpecial: false);

    /// <summary>The most pieces a question may have: room is left for [CLS], [SEP] and 32 passage tokens.</summary>
    public int MaxQuestionPieces => Model.Config.SeqLimit - 2 - 32;

    /// <summary>Throws a one-line error when the question is empty or does not fit the encoder's window.</summary>
    public void CheckQuestion(string question)
    {
        if (string.IsNullOrWhiteSpace(question)) throw new PareException("the question is empty");
        int n = Pieces(question).Length;
        if (n > MaxQuestionPieces)
            throw new PareException($"the question has {n} encoder tokens, more than the {MaxQuestionPieces} that fit the encoder's window of {Model.Config.SeqLimit} with a passage");
    }

    /// <summary>Sentence vectors (truncated to the model's length, as sentence-transformers does).</summary>
    public float[][] Embed(IReadOnlyList<string> texts, ITokenReducer? reducer = null, CancellationToken ct = default)
    {
        if (texts.Count == 0) return [];
        if (reducer == null && texts.All(_cache.ContainsKey)) return [.. texts.Select(t => _cache[t])];
        var ids = texts.Select(t => Model.Tokenize(t).Ids).ToArray();
        Sequences += ids.Length;
        Tokens += ids.Sum(x => (long)x.Length);
        var v = Model.EmbedIds(ids, new EmbedOptions { Threads = Threads, TokenReducer = reducer }, ct);
        if (reducer == null && _cache.Count < 200_000)
            for (int i = 0; i < texts.Count; i++) _cache[texts[i]] = v[i];
        return v;
    }

    /// <summary>Token states of texts (final layer, one row per WordPiece token including [CLS]/[SEP]).</summary>
    public BertHidden Hidden(IReadOnlyList<int[]> ids, ITokenReducer? reducer = null, CancellationToken ct = default)
    {
        Sequences += ids.Count;
        Tokens += ids.Sum(x => (long)x.Length);
        return Model.Encoder.Forward(ids, Threads, reducer, null, ct);
    }

    public BertHidden Hidden(IReadOnlyList<string> texts, CancellationToken ct = default) =>
        Hidden(texts.Select(t => Model.Tokenize(t).Ids).ToArray(), null, ct);

    /// <summary>
    /// Ids of [CLS] question [SEP] s1 s2 … [SEP] and the token span of each sentence; sentences that do not fit the
    /// window are cut (their span is empty, or shortened).
    /// </summary>
    public (int[] Ids, (int Start, int End) Question, (int Start, int End)[] Sentences) Joint(string question, IReadOnlyList<string> sentences)
    {
        var tok = Model.Tokenizer;
        int limit = Model.Config.SeqLimit;
        var ids = new List<int> { tok.ClsId };
        ids.AddRange(Pieces(question));
        var q = (1, ids.Count);
        ids.Add(tok.SepId);
        var spans = new (int, int)[sentences.Count];
        foreach (var (s, i) in sentences.Select((s, i) => (s, i)))
        {
            int start = ids.Count;
            foreach (int p in Pieces(s)) { if (ids.Count >= limit - 1) break; ids.Add(p); }
            spans[i] = (start, ids.Count);
        }
        ids.Add(tok.SepId);
        return ([.. ids], q, spans);
    }

    /// <summary>Mean of rows [start, end) of sentence <paramref name="s"/>'s token states (zeros when empty).</summary>
    public static float[] MeanRows(BertHidden h, int s, int start, int end)
    {
        var v = new float[h.Dim];
        if (end <= start) return v;
        for (int t = start; t < end; t++)
        {
            var row = h.Row(s, t);
            for (int i = 0; i < v.Length; i++) v[i] += row[i];
        }
        for (int i = 0; i < v.Length; i++) v[i] /= end - start;
        return v;
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
