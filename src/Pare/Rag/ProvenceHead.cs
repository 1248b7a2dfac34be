using System.Text.Json;
using Pare.Models.Bert;

namespace Pare.Rag;

/// <summary>
/// The heads of <see cref="ProvencePruner"/> on a frozen encoder: two logistic regressions over the token states of one
/// joint pass [CLS] question [SEP] passage [SEP]. Sentence relevance reads [m_s, m_s ⊙ m_q] (m_s: mean state of the
/// sentence's tokens, m_q: of the question's); passage reranking reads [h_CLS, m_p ⊙ m_q] (m_p: of all passage tokens).
/// </summary>
public sealed record ProvenceHead(float[] SentenceWeights, float SentenceBias, float[] RerankWeights, float RerankBias)
{
    public int Dim => SentenceWeights.Length / 2;

    public static float[] SentenceFeatures(float[] ms, float[] mq) => [.. ms, .. ms.Zip(mq, (a, b) => a * b)];
    public static float[] RerankFeatures(ReadOnlySpan<float> cls, float[] mp, float[] mq) => [.. cls, .. mp.Zip(mq, (a, b) => a * b)];

    /// <summary>A passage's score from its sentences: the best sentence logit (what the pruner and the cascade rank by; the
    /// [CLS] rerank logit of the same pass ranked worse on the cloze set, docs/context-pruning.md).</summary>
    public static double[] BestSentence(double[][] sentences) => [.. sentences.Select(s => s.Length == 0 ? double.NegativeInfinity : s.Max())];

    public double SentenceLogit(float[] features) => Embedder.Dot(SentenceWeights, features) + SentenceBias;
    public double RerankLogit(float[] features) => Embedder.Dot(RerankWeights, features) + RerankBias;

    /// <summary>Sentence logits and the passage's rerank logit for every candidate, from one joint pass each (one batch).</summary>
    public (double[][] Sentences, double[] Passages) Score(Embedder e, string question, IReadOnlyList<IReadOnlyList<string>> passages,
        ITokenReducer? reducer = null, CancellationToken ct = default)
    {
        if (e.Dim != Dim) throw new PareException($"the Provence head is for an encoder of width {Dim}, the model has {e.Dim}");
        var joint = passages.Select(p => e.Joint(question, p)).ToArray();
        var h = e.Hidden([.. joint.Select(j => j.Ids)], reducer, ct);
        var sent = new double[passages.Count][];
        var pass = new double[passages.Count];
        for (int c = 0; c < passages.Count; c++)
        {
            var (_, q, spans) = joint[c];
            if (reducer != null)
            {
                // Token-pruned pass: token positions no longer line up, only [CLS] and whole-row means remain meaningful.
                int len = h.Length(c);
                var all = Embedder.MeanRows(h, c, 1, len - 1);
                pass[c] = RerankLogit(RerankFeatures(h.Row(c, 0), all, all));
                sent[c] = new double[spans.Length];
                continue;
            }
            var mq = Embedder.MeanRows(h, c, q.Start, q.End);
            int ps = spans.Length > 0 ? spans[0].Start : q.End + 1, pe = spans.Length > 0 ? spans[^1].End : ps;
            pass[c] = RerankLogit(RerankFeatures(h.Row(c, 0), Embedder.MeanRows(h, c, ps, pe), mq));
            sent[c] = [.. spans.Select(sp => sp.End > sp.Start ? SentenceLogit(SentenceFeatures(Embedder.MeanRows(h, c, sp.Start, sp.End), mq)) : double.NegativeInfinity)];
        }
        return (sent, pass);
    }

    public void Save(string path)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(new Dto(SentenceWeights, SentenceBias, RerankWeights, RerankBias)));
        File.Move(tmp, path, overwrite: true);
    }

    public static ProvenceHead Load(string path)
    {
        if (!File.Exists(path)) throw new PareException($"Provence head not found: {path} (train one with 'pare rag-train')");
        Dto? d;
        try { d = JsonSerializer.Deserialize<Dto>(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PareException($"{path}: not a Provence head ({e.Message})"); }
        if (d?.Sentence == null || d.Rerank == null || d.Sentence.Length != d.Rerank.Length || d.Sentence.Length % 2 != 0)
            throw new PareException($"{path}: not a Provence head");
        return new ProvenceHead(d.Sentence, d.SentenceBias, d.Rerank, d.RerankBias);
    }

    sealed record Dto(float[] Sentence, float SentenceBias, float[] Rerank, float RerankBias);
}
