namespace Pare.Speculative;

/// <summary>
/// Prompt Lookup Decoding (Saxena, 2023): find the most recent earlier occurrence of the last n tokens (n from
/// <see cref="MaxNgram"/> down to 1) in prompt + output and propose the tokens that followed it, as a chain.
/// Costs nothing to draft and shines when the output quotes its input. <paramref name="minNgram"/> &gt; 1 drafts only
/// on longer matches (a single repeated token is a weak hint; `auto` leaves those to Token Recycling).
/// </summary>
public sealed class PromptLookup(int maxNgram = 3, int minNgram = 1) : IDrafter
{
    public string Name => "pld";
    public int MaxNgram { get; } = maxNgram;
    public int MinNgram { get; } = Math.Max(1, minNgram);

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab) { }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        int len = history.Count;
        for (int n = Math.Min(MaxNgram, len - 1); n >= MinNgram; n--)
        {
            // Search backwards for history[len-n .. len) ending before the last position.
            for (int end = len - 1; end >= n; end--)
            {
                bool match = true;
                for (int k = 1; k <= n && match; k++) match = history[end - k] == history[len - k];
                if (!match) continue;
                int parent = 0;
                for (int i = end; i < len && tree.Count < budget; i++) parent = tree.Add(history[i], parent);
                return tree;
            }
        }
        return tree;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab) { }
}
