using System.Text.RegularExpressions;
using Pare.Models.Bert;

namespace Pare.Evaluation;

/// <summary>A retrieval set: documents, queries and the document each query belongs to.</summary>
public sealed record RetrievalSet(IReadOnlyList<string> Documents, IReadOnlyList<string> Queries, IReadOnlyList<int> Relevant);

/// <summary>Recall@1, recall@10 and mean reciprocal rank of the relevant document.</summary>
public sealed record RetrievalScores(double RecallAt1, double RecallAt10, double Mrr, int Queries);

/// <summary>
/// Retrieval quality of a sentence encoder on the corpus: the test split's text (blocks between blank lines) is cut into
/// sentences and those into passages of <see cref="PassageSentences"/> consecutive sentences. A seeded draw of passages
/// forms the collection; from each, one sentence (not the first, at least five words) is held out as the query and
/// removed from its passage. A query is answered by ranking all documents by cosine similarity.
/// </summary>
public static partial class EncoderRetrieval
{
    public const int PassageSentences = 5;

    public static RetrievalSet Build(string text, int count, int seed = 7)
    {
        var rng = new Random(seed);
        var passages = new List<List<string>>();
        foreach (var block in text.Split("\n\n"))
        {
            var sentences = block.Split('\n').SelectMany(l => SentenceEnd().Split(l.Trim())).Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
            for (int i = 0; i + 3 <= sentences.Count; i += PassageSentences)
                passages.Add(sentences.GetRange(i, Math.Min(PassageSentences, sentences.Count - i)));
        }
        for (int i = passages.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (passages[i], passages[j]) = (passages[j], passages[i]); }
        var docs = new List<string>(); var queries = new List<string>(); var rel = new List<int>();
        foreach (var p in passages)
        {
            if (docs.Count >= count) break;
            int q = 1 + rng.Next(p.Count - 1);
            if (p[q].Split(' ').Length < 5) continue; // a query says something
            queries.Add(p[q]);
            rel.Add(docs.Count);
            docs.Add(string.Join(' ', p.Where((_, i) => i != q)));
        }
        if (docs.Count == 0) throw new PareException("no passage of three or more sentences in the text");
        return new RetrievalSet(docs, queries, rel);
    }

    /// <summary>Scores from document and query vectors (unit length: the dot product is the cosine).</summary>
    public static RetrievalScores Score(RetrievalSet set, float[][] docVectors, float[][] queryVectors)
    {
        double r1 = 0, r10 = 0, mrr = 0;
        for (int q = 0; q < queryVectors.Length; q++)
        {
            double target = SentencePooling.Cosine(queryVectors[q], docVectors[set.Relevant[q]]);
            int rank = 1;
            for (int d = 0; d < docVectors.Length; d++)
                if (d != set.Relevant[q] && SentencePooling.Cosine(queryVectors[q], docVectors[d]) > target) rank++;
            if (rank == 1) r1++;
            if (rank <= 10) r10++;
            mrr += 1.0 / rank;
        }
        int n = queryVectors.Length;
        return new RetrievalScores(r1 / n, r10 / n, mrr / n, n);
    }

    [GeneratedRegex(@"(?<=[.!?][""')\]]?)\s+(?=[""'(\[]?[A-Z0-9])")]
    private static partial Regex SentenceEnd();
}
