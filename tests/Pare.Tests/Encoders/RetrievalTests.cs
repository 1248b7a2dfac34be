using Pare.Evaluation;

namespace Pare.Tests.Encoders;

public class RetrievalTests
{
    [Fact]
    public void Each_query_is_a_sentence_held_out_of_its_own_passage()
    {
        string text = string.Join("\n\n", Enumerable.Range(0, 30).Select(b =>
            string.Join("\n", Enumerable.Range(0, 7).Select(s => $"Block {b} sentence number {s} says something here."))));
        var set = EncoderRetrieval.Build(text, 20);
        Assert.Equal(20, set.Queries.Count);
        for (int q = 0; q < set.Queries.Count; q++)
        {
            string doc = set.Documents[set.Relevant[q]];
            Assert.DoesNotContain(set.Queries[q], doc, StringComparison.Ordinal);
            string block = set.Queries[q].Split(' ')[1];
            Assert.Contains($"Block {block} sentence", doc, StringComparison.Ordinal);
        }
        Assert.Equal(set.Queries, EncoderRetrieval.Build(text, 20).Queries); // seeded
    }

    [Fact]
    public void Scores_count_ranks_of_the_relevant_document()
    {
        var set = new RetrievalSet(["a", "b", "c"], ["qa", "qb"], [0, 1]);
        float[][] docs = [[1, 0], [0, 1], [0.8f, 0.6f]];
        float[][] queries = [[1, 0], [0.6f, 0.8f]]; // first: rank 1; second: "c" (0.96) beats "b" (0.8), rank 2
        var s = EncoderRetrieval.Score(set, docs, queries);
        Assert.Equal((0.5, 1.0, 0.75), (s.RecallAt1, s.RecallAt10, s.Mrr));
    }
}
