using Pare.Tensors;

namespace Pare.Rag;

/// <summary>A cloze question: a window of words of <see cref="AnswerSentence"/> of passage <see cref="Gold"/> with one word blanked.</summary>
public sealed record ClozeQuestion(string Question, string Answer, int Gold, int AnswerSentence);

/// <summary>A passage pool and questions over it.</summary>
public sealed record ClozeSet(IReadOnlyList<Passage> Pool, IReadOnlyList<ClozeQuestion> Questions);

/// <summary>Options of <see cref="ClozeSet"/> construction.</summary>
public sealed record ClozeOptions
{
    /// <summary>Passages drawn into the pool (retrieval collection and distractor source). Default 300.</summary>
    public int PoolSize { get; init; } = 300;
    /// <summary>Questions asked (each about a different pool passage). Default 40.</summary>
    public int Questions { get; init; } = 40;
    /// <summary>Sentences per passage. Default 5.</summary>
    public int PassageSentences { get; init; } = 5;
    /// <summary>Words kept on each side of the blank. Default 6.</summary>
    public int Window { get; init; } = 6;
    public ulong Seed { get; init; } = 7;
}

/// <summary>
/// Evaluation set (a) of issue #19, built deterministically from a corpus split: documents are the blocks between blank
/// lines, cut into passages of five sentences; a seeded draw of passages with at least three sentences forms the pool.
/// For a question a passage of the pool is drawn, one of its sentences with at least eight words is the answer sentence,
/// one of its words of five letters or more (not the first) is blanked, and the question is the blank with up to
/// <see cref="ClozeOptions.Window"/> words on each side ("... the ____ of the ..."). The distractors are the passages of
/// other documents that the encoder retrieves for the question (chosen by the evaluation, from the pool's vectors).
/// </summary>
public static class ClozeSets
{
    public static ClozeSet Build(string text, ClozeOptions? options = null)
    {
        var o = options ?? new ClozeOptions();
        if (o.PoolSize < 2 || o.Questions < 1) throw new PareException("a cloze set needs a pool of at least 2 passages and 1 question");
        var rng = new SplitMix64(o.Seed);
        var all = new List<Passage>();
        int doc = 0;
        foreach (var block in text.ReplaceLineEndings("\n").Split("\n\n"))
        {
            all.AddRange(TextSplit.Passages($"doc{doc}", block, o.PassageSentences).Where(p => p.Sentences.Count >= 3));
            doc++;
        }
        if (all.Count < 2) throw new PareException("the text has fewer than two passages of three or more sentences");
        rng.Shuffle(all);
        var pool = all.Take(o.PoolSize).ToList();
        var questions = new List<ClozeQuestion>();
        foreach (int p in Enumerable.Range(0, pool.Count))
        {
            if (questions.Count >= o.Questions) break;
            var candidates = pool[p].Sentences.Select((s, i) => (s, i)).Where(x => x.s.Split(' ').Length >= 8).ToList();
            if (candidates.Count == 0) continue;
            var (sentence, si) = candidates[rng.NextInt(candidates.Count)];
            var words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var blankable = Enumerable.Range(1, words.Length - 1).Where(i => words[i].Length >= 5 && words[i].All(char.IsLetter)).ToList();
            if (blankable.Count == 0) continue;
            int b = blankable[rng.NextInt(blankable.Count)];
            int from = Math.Max(0, b - o.Window), to = Math.Min(words.Length, b + o.Window + 1);
            var q = words[from..to].Select((w, i) => from + i == b ? "____" : w);
            questions.Add(new ClozeQuestion(string.Join(' ', q), words[b], p, si));
        }
        if (questions.Count == 0) throw new PareException("no passage had a sentence to ask about");
        return new ClozeSet(pool, questions);
    }

    /// <summary>The candidates of a question: the gold passage and the best-scoring pool passages of other documents
    /// (<paramref name="k"/> in all), in decreasing cosine to the question.</summary>
    public static List<int> Candidates(ClozeSet set, ClozeQuestion q, float[] question, float[][] pool, int k)
    {
        string doc = set.Pool[q.Gold].Source;
        var others = Enumerable.Range(0, pool.Length).Where(i => set.Pool[i].Source != doc)
            .OrderByDescending(i => Embedder.Dot(question, pool[i])).ThenBy(i => i).Take(k - 1);
        return [.. others.Append(q.Gold).OrderByDescending(i => Embedder.Dot(question, pool[i])).ThenBy(i => i)];
    }
}
