using Pare.Models.Bert;

namespace Pare.Rag;

/// <summary>
/// A passage scorer of the IDCM cascade: a score per candidate for a question (higher is more relevant). A stage pays
/// its whole cost inside <see cref="Score"/> (no cache across calls), so timing a call times the stage.
/// </summary>
public interface IPassageScorer
{
    string Name { get; }
    double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default);
}

/// <summary>The index's bi-encoder cosine (<see cref="Candidate.Score"/>): computed at retrieval, free at rerank time.</summary>
public sealed class BiEncoderStage : IPassageScorer
{
    public string Name => "bi-encoder (index cosine)";
    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) => [.. candidates.Select(c => c.Score)];
}

/// <summary>
/// Best-sentence cosine: the question and every sentence of every candidate are embedded (one batch, no cache) and a
/// candidate scores the cosine of its best sentence. With <paramref name="layers"/> below the model's depth the encoder
/// stops after that many blocks and pools those states (a layer-pruned MiniLM); with <paramref name="reducer"/> tokens
/// are pruned or merged inside the pass (a token-pruned MiniLM). With neither it is the full encoder, the same scores
/// as <see cref="SimilarityThreshold"/>'s passage ranking.
/// </summary>
public sealed class BestSentenceStage : IPassageScorer, ISentenceScorer
{
    readonly BertModel _model;
    readonly BertEncoder _encoder;
    readonly ITokenReducer? _reducer;
    readonly int _threads;

    public BestSentenceStage(BertModel model, int threads, int layers = 0, ITokenReducer? reducer = null, string? reducerName = null)
    {
        int full = model.Config.Layers;
        if (layers == 0) layers = full;
        if (layers < 1 || layers > full) throw new PareException($"the first stage's layers must be between 1 and {full} (got {layers})");
        _model = model;
        _encoder = layers == full ? model.Encoder : new BertEncoder(model.Config with { Layers = layers }, TruncatedWeights(model, layers));
        _reducer = reducer;
        _threads = threads;
        Layers = layers;
        Name = $"best sentence, MiniLM {layers} of {full} layers" + (reducer == null ? "" : $", {reducerName ?? "token-pruned"}");
    }

    public string Name { get; }
    public int Layers { get; }

    // The first blocks' weights of the full model (BertWeights reads only the blocks the config names).
    static BertWeights TruncatedWeights(BertModel m, int layers) => new(m.Config with { Layers = layers }, m.Tensors);

    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        [.. SentenceScores(question, [.. candidates.Select(c => c.Passage.Sentences)], ct).Select(s => s.Length == 0 ? double.NegativeInfinity : s.Max())];

    /// <summary>Cosine of every sentence to the question, embedded by this stage's encoder (one batch, no cache).</summary>
    public double[][] SentenceScores(string question, IReadOnlyList<IReadOnlyList<string>> passages, CancellationToken ct = default)
    {
        var ids = new List<int[]> { _model.Tokenize(question).Ids };
        foreach (var p in passages) ids.AddRange(p.Select(s => _model.Tokenize(s).Ids));
        var v = new List<float[]>(ids.Count);
        for (int start = 0; start < ids.Count; start += 64)
        {
            var h = _encoder.Forward([.. ids.Skip(start).Take(64)], _threads, _reducer, null, ct);
            v.AddRange(SentencePooling.Pool(h, _model.Config.Pooling, _model.Config.Normalize));
        }
        return SimilarityThreshold.Cosines(v, passages);
    }
}

/// <summary>
/// IDCM at its own granularity (passages inside a document there, sentences inside a candidate passage here): the cheap
/// stage scores every sentence of every candidate, the full stage embeds only the <paramref name="perPassage"/> best
/// sentences of each candidate, and a candidate scores the full stage's best cosine among them. A whole ranker: its cost
/// is the cheap stage over everything plus the full pass over 8 × <paramref name="perPassage"/> sentences. The cheap
/// stage is a cut MiniLM or BM25 (<see cref="Bm25Sentences"/>).
/// </summary>
public sealed class SentenceCascadeStage(ISentenceScorer cheap, BestSentenceStage full, int perPassage) : IPassageScorer
{
    public string Name => $"intra-passage cascade: {cheap.Name} picks {perPassage} sentence(s) per candidate, full MiniLM scores them";

    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default)
    {
        if (perPassage < 1) throw new PareException($"sentences per candidate must be at least 1 (got {perPassage})");
        var esm = cheap.SentenceScores(question, [.. candidates.Select(c => c.Passage.Sentences)], ct);
        var picked = esm.Select((s, c) => Enumerable.Range(0, s.Length).OrderByDescending(i => s[i]).ThenBy(i => i).Take(perPassage)
            .Select(i => candidates[c].Passage.Sentences[i]).ToList()).ToList();
        return [.. full.SentenceScores(question, [.. picked.Select(p => (IReadOnlyList<string>)p)], ct).Select(s => s.Length == 0 ? double.NegativeInfinity : s.Max())];
    }
}

/// <summary>The Provence head on the full encoder's joint pass [CLS] question [SEP] passage [SEP]: a candidate scores its
/// best sentence logit (the cross-encoder of <see cref="ProvencePruner"/>).</summary>
public sealed class ProvenceStage(Embedder embedder, ProvenceHead head) : IPassageScorer
{
    public string Name => "Provence joint pass, best sentence logit";
    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        ProvenceHead.BestSentence(head.Score(embedder, question, [.. candidates.Select(c => c.Passage.Sentences)], null, ct).Sentences);
}

/// <summary>The Provence head's [CLS] rerank logit on a token-pruned joint pass (token pruning breaks the sentence spans,
/// so only [CLS] is left to score with).</summary>
public sealed class ProvenceClsStage(Embedder embedder, ProvenceHead head, ITokenReducer reducer, string reducerName) : IPassageScorer
{
    public string Name => $"Provence [CLS] logit, joint pass {reducerName}";
    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default) =>
        head.Score(embedder, question, [.. candidates.Select(c => c.Passage.Sentences)], reducer, ct).Passages;
}

/// <summary>The sum of two stages' scores (e.g. the index's free bi-encoder cosine plus a layer-pruned MiniLM's best
/// sentence): both are cosines, so they are added unweighted; the cost is both stages'.</summary>
public sealed class SumStage(IPassageScorer a, IPassageScorer b) : IPassageScorer
{
    public string Name => $"{a.Name} + {b.Name}";
    public double[] Score(string question, IReadOnlyList<Candidate> candidates, CancellationToken ct = default)
    {
        var x = a.Score(question, candidates, ct);
        var y = b.Score(question, candidates, ct);
        return [.. x.Zip(y, (p, q) => p + q)];
    }
}
