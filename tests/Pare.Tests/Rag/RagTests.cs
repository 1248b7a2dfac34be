using Pare.Rag;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Rag;

/// <summary>Context pruning pieces without an encoder: selection under a budget, the baselines, CRAG's actions, the cloze set, the index file.</summary>
public class RagTests
{
    static int Words(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;

    static PruneRequest Request(int budget, params (double Score, string[] Sentences)[] passages) =>
        new("q", [.. passages.Select((p, i) => new Candidate(new Passage($"p{i}", p.Sentences), p.Score))], budget, Words);

    [Fact]
    public void Sentences_and_passages_split_where_sentences_end()
    {
        Assert.Equal(["It is 3 p.m. now.", "Yes!", "3 apples?", "\"No,\" he said."], TextSplit.Sentences("It is 3 p.m. now. Yes! 3 apples? \"No,\" he said."));
        Assert.Equal(["One two.", "Three four!", "Five?"], TextSplit.Sentences("One two. Three four! Five?"));
        var p = TextSplit.Passages("f", "A a. B b. C c.\nD d.\n\nE e.", 3);
        Assert.Equal([3, 1, 1], p.Select(x => x.Sentences.Count));
        Assert.Equal("A a. B b. C c.", p[0].Text);
    }

    [Fact]
    public void Budgeted_selection_keeps_best_scores_within_budget_in_reading_order()
    {
        var r = Request(5, (0, ["a b c", "d e", "f"]), (0, ["g h i j", "k"]));
        double[][] scores = [[0.1, 0.9, 0.2], [0.8, 0.7]];
        var pc = SentenceSelection.Keep(r, scores, [0, 0]);
        // 0.9 (2 words), 0.8 (4: does not fit), 0.7 (1), 0.2 (1) -> 4 words; 0.1 (3) does not fit.
        Assert.Equal([(0, 1), (0, 2), (1, 1)], pc.Kept);
        Assert.Equal(4, pc.TokensKept);
        Assert.True(pc.TokensKept <= r.Budget);
        var natural = SentenceSelection.Keep(r with { Budget = int.MaxValue }, scores, [0, 0], 0.75);
        Assert.Equal([(0, 1), (1, 0)], natural.Kept);
    }

    [Fact]
    public void No_pruning_truncates_and_top_k_keeps_whole_passages_by_score()
    {
        var r = Request(6, (0.1, ["a b", "c d"]), (0.9, ["e f g", "h i j"]), (0.5, ["k", "l"]));
        Assert.Equal([(0, 0), (0, 1)], new NoPruning().Prune(r).Kept);                  // 4 words, next (3) would pass 6
        Assert.Equal([(1, 0), (1, 1)], new TopKPassages().Prune(r).Kept);              // 6 words: the best passage
        // Budget 5: the best passage (6 words) does not fit and is skipped, the third (2) fits, the first (4) then does not.
        Assert.Equal([(2, 0), (2, 1)], new TopKPassages().Prune(r with { Budget = 5 }).Kept);
        var k1 = new TopKPassages(new TopKOptions { K = 1 }).Prune(r with { Budget = int.MaxValue });
        Assert.Equal([(1, 0), (1, 1)], k1.Kept);
        Assert.Throws<PareException>(() => new NoPruning().Prune(r with { Budget = 0 }));
    }

    [Fact]
    public void Crag_acts_on_its_grades()
    {
        var crag = new CragPruner(null!, new CragOptions { Upper = 0.5, Lower = 0.2 });
        var r = Request(100, (0.6, ["a"]), (0.3, ["b"]), (0.1, ["c"]));
        Assert.Equal([CragVerdict.Correct, CragVerdict.Ambiguous, CragVerdict.Incorrect], crag.Evaluate(r));
        // All incorrect: no web search here, nothing is kept and no encoder pass is made (the embedder is null).
        var none = crag.Prune(Request(100, (0.1, ["a"]), (0.0, ["b"])));
        Assert.Empty(none.Kept);
    }

    [Fact]
    public void Cloze_set_is_deterministic_and_blanks_a_word_of_the_answer_sentence()
    {
        string text = string.Join("\n\n", Enumerable.Range(0, 40).Select(b => string.Join("\n",
            Enumerable.Range(0, 6).Select(s => $"Document {b} carries sentence {s} about harbours, lighthouses and northern weather."))));
        var set = ClozeSets.Build(text, new ClozeOptions { PoolSize = 30, Questions = 10 });
        Assert.Equal(10, set.Questions.Count);
        Assert.Equal(30, set.Pool.Count);
        foreach (var q in set.Questions)
        {
            Assert.Contains("____", q.Question, StringComparison.Ordinal);
            string sentence = set.Pool[q.Gold].Sentences[q.AnswerSentence];
            Assert.Contains(q.Answer, sentence.Split(' '));
            Assert.Contains(q.Question.Replace("____", q.Answer, StringComparison.Ordinal), sentence, StringComparison.Ordinal);
            Assert.True(q.Answer.Length >= 5);
        }
        Assert.Equal(set.Questions, ClozeSets.Build(text, new ClozeOptions { PoolSize = 30, Questions = 10 }).Questions);
        float[][] pool = [.. set.Pool.Select((_, i) => new float[] { MathF.Cos(i), MathF.Sin(i) })];
        var c = ClozeSets.Candidates(set, set.Questions[0], [1, 0], pool, 5);
        Assert.Equal(5, c.Count);
        Assert.Contains(set.Questions[0].Gold, c);
        Assert.Single(c, i => set.Pool[i].Source == set.Pool[set.Questions[0].Gold].Source);
    }

    [Fact]
    public void Index_file_round_trips_and_refuses_damage()
    {
        var dir = Directory.CreateTempSubdirectory("pare-rag-");
        var idx = new PassageIndex("m", [new Passage("a.txt", ["One.", "Two."]), new Passage("b.txt", ["Three."])], [[1, 0], [0.6f, 0.8f]]);
        string path = Path.Combine(dir.FullName, "x.idx");
        idx.Save(path);
        var back = PassageIndex.Load(path);
        Assert.Equal(["One.", "Two."], back.Passages[0].Sentences);
        Assert.Equal(idx.Vectors, back.Vectors);
        Assert.Equal("b.txt", back.Search([0, 1], 1)[0].Passage.Source);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..^3]);
        Assert.Contains("truncated", Assert.Throws<PareException>(() => PassageIndex.Load(path)).Message, StringComparison.Ordinal);
        File.WriteAllBytes(Path.Combine(dir.FullName, "bin.txt"), [72, 0, 1, 2]);
        Assert.Contains("binary", Assert.Throws<PareException>(() => PassageIndex.ReadText(Path.Combine(dir.FullName, "bin.txt"))).Message, StringComparison.Ordinal);
    }
    [Fact]
    public void Bm25_ranks_the_sentence_sharing_rare_question_words_first_and_matches_the_formula()
    {
        IReadOnlyList<string>[] passages = [["The cat sat on the mat.", "The whale sang in the deep sea."], ["The dog sat by the fire."]];
        var s = new Bm25Sentences().SentenceScores("whale in the sea", passages);
        Assert.Equal([2, 1], s.Select(p => p.Length));
        Assert.True(s[0][1] > s[0][0] && s[0][1] > s[1][0], "the whale sentence shares the rare words");
        // "the" is in all 3 sentences, so only its small IDF counts for the others: equal length (6 words), equal score.
        Assert.Equal(s[0][0], s[1][0], 12);
        double Idf(int df) => Math.Log(1 + (3 - df + 0.5) / (df + 0.5));
        double avg = (6 + 7 + 6) / 3.0, norm = 1.2 * (1 - 0.75 + 0.75 * 7 / avg);
        // whale, in, sea: df 1, tf 1; the: df 3, tf 2 in the whale sentence.
        double want = 3 * Idf(1) * 2.2 / (1 + norm) + Idf(3) * 2 * 2.2 / (2 + norm);
        Assert.Equal(want, s[0][1], 10);
        Assert.Equal(["it", "s", "3", "p", "m"], Bm25Sentences.Words("It's 3 p.m."));
        var ranked = new Bm25Sentences().Score("whale in the sea", [.. passages.Select((p, i) => new Candidate(new Passage($"p{i}", p), 0))]);
        Assert.Equal(s[0][1], ranked[0]);
    }
}
