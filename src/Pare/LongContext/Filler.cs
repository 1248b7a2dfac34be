using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>
/// Real text to hide needles in: random windows of a tokenized corpus split (the train split for training, the test split
/// for evaluation), or the classic passkey filler ("The grass is green. ...") repeated.
/// </summary>
public sealed class Filler
{
    readonly int[] _tokens;
    readonly bool[] _endsSentence;

    /// <summary>The classic filler sentences of the passkey test (Mohtashami and Jaggi, 2023).</summary>
    public const string Classic = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

    public Filler(int[] tokens, TokenText text)
    {
        if (tokens.Length < 64) throw new PareException($"the filler text has {tokens.Length} tokens; at least 64 are needed");
        _tokens = tokens;
        _endsSentence = new bool[text.Tokenizer.VocabSize];
        for (int id = 0; id < _endsSentence.Length; id++)
        {
            var b = text.Tokenizer.TokenBytes(id);
            _endsSentence[id] = b.Length > 0 && b[^1] is (byte)'.' or (byte)'\n' or (byte)'!' or (byte)'?';
        }
    }

    /// <summary>The classic filler repeated to cover any length.</summary>
    public static Filler ClassicFiller(TokenText text)
    {
        var one = text.Encode(Classic);
        var ids = new int[Math.Max(4096, one.Length) / one.Length * one.Length + one.Length * 8];
        for (int i = 0; i < ids.Length; i++) ids[i] = one[i % one.Length];
        return new Filler(ids, text);
    }

    /// <summary><paramref name="count"/> consecutive tokens from a random place (wrapping around the end).</summary>
    public int[] Take(SplitMix64 rng, int count)
    {
        var dst = new int[count];
        int start = rng.NextInt(_tokens.Length);
        for (int i = 0; i < count; i++) dst[i] = _tokens[(start + i) % _tokens.Length];
        return dst;
    }

    /// <summary><paramref name="count"/> tokens drawn uniformly from the distinct tokens of the text: no sequential
    /// structure, and no frequent token that repeats inside a span (an ambiguous match for a copy), so nothing in them is
    /// predictable except by looking back. With <paramref name="vocab"/> &gt; 0, only the that many most frequent tokens
    /// (ties by id) are drawn.</summary>
    public int[] Shuffled(SplitMix64 rng, int count, int vocab = 0)
    {
        _distinct ??= [.. _tokens.Distinct().Order()];
        var from = _distinct;
        int n = _distinct.Length;
        if (vocab > 0 && vocab < n)
        {
            _frequent ??= [.. _tokens.GroupBy(t => t).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => g.Key)];
            (from, n) = (_frequent, vocab);
        }
        var dst = new int[count];
        for (int i = 0; i < count; i++) dst[i] = from[rng.NextInt(n)];
        return dst;
    }

    int[]? _distinct, _frequent;

    /// <summary>
    /// A place to insert a needle near <paramref name="index"/> in <paramref name="filler"/>: just after a token that ends a
    /// sentence or line, looking up to 24 tokens back and forth; the index itself when there is none.
    /// </summary>
    public int SentenceBoundary(ReadOnlySpan<int> filler, int index)
    {
        for (int d = 0; d <= 24; d++)
        {
            foreach (int i in (ReadOnlySpan<int>)[index - d, index + d])
                if (i == 0 || i == filler.Length || (i > 0 && i < filler.Length && _endsSentence[filler[i - 1]])) return i;
        }
        return index;
    }
}
