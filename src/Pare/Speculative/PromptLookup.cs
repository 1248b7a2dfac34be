namespace Pare.Speculative;

/// <summary>
/// Prompt Lookup Decoding (Saxena, 2023): find the most recent earlier occurrence of the last n tokens (n from
/// <see cref="MaxNgram"/> down to 1) in prompt + output and propose the tokens that followed it, as a chain.
/// Costs nothing to draft and shines when the output quotes its input. <paramref name="minNgram"/> &gt; 1 drafts only
/// on longer matches (a single repeated token is a weak hint; `auto` leaves those to Token Recycling).
/// The occurrences are kept in an <see cref="NgramIndex"/> per n, updated with the tokens appended since the last
/// draft, so a draft costs O(1 + new tokens) rather than a scan of the whole history (<see cref="Scan"/> is that scan,
/// the reference the tests compare with).
/// </summary>
public sealed class PromptLookup : IDrafter
{
    readonly NgramIndex[] _index;

    public PromptLookup(int maxNgram = 3, int minNgram = 1)
    {
        MaxNgram = maxNgram;
        MinNgram = Math.Max(1, minNgram);
        _index = [.. Enumerable.Range(0, Math.Max(0, MaxNgram - MinNgram + 1)).Select(i => new NgramIndex(MinNgram + i))];
    }

    public string Name => "pld";
    public int MaxNgram { get; }
    public int MinNgram { get; }

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        foreach (var x in _index) x.Reset();
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        int len = history.Count;
        // Every index catches up on the new tokens (each is asked on every draft), then the longest match wins.
        int from = -1;
        for (int i = _index.Length - 1; i >= 0; i--)
        {
            int e = _index[i].Latest(history);
            if (from < 0 && e >= 0) from = e;
        }
        if (from >= 0)
        {
            int parent = 0;
            for (int i = from; i < len && tree.Count < budget; i++) parent = tree.Add(history[i], parent);
        }
        return tree;
    }

    /// <summary>The backward scan the index replaces: the end of the latest earlier occurrence of the longest suffix n-gram (n from max down to min), or -1.</summary>
    public static int Scan(IReadOnlyList<int> history, int maxNgram, int minNgram)
    {
        int len = history.Count;
        for (int n = Math.Min(maxNgram, len - 1); n >= Math.Max(1, minNgram); n--)
            for (int end = len - 1; end >= n; end--)
            {
                bool match = true;
                for (int k = 1; k <= n && match; k++) match = history[end - k] == history[len - k];
                if (match) return end;
            }
        return -1;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }
}
