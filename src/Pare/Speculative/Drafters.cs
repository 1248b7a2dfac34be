namespace Pare.Speculative;

/// <summary>
/// Several drafters in one tree: each adds its draft under the shared root, in order, until the budget is used; every
/// part but the last drafts into at most half of the budget left, so one long wrong chain cannot crowd out the rest.
/// `auto` is prompt lookup on matches of 2-3 tokens first (exact quotes are the surest drafts), then Token Recycling
/// to fill the tree.
/// </summary>
public sealed class CompositeDrafter(string name, params IDrafter[] parts) : IDrafter
{
    public string Name { get; } = name;

    public void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab)
    {
        foreach (var p in parts) p.Start(prompt, promptLogits, vocab);
    }

    public DraftTree Draft(IReadOnlyList<int> history, int budget)
    {
        var tree = new DraftTree(history[^1]);
        for (int k = 0; k < parts.Length; k++)
        {
            if (tree.Count >= budget) break;
            int room = budget - tree.Count;
            var d = parts[k].Draft(history, k == parts.Length - 1 ? budget : 1 + Math.Max(1, room / 2));
            // Re-add d's nodes under the matching nodes of tree (shared prefixes merge).
            var map = new int[d.Count];
            for (int i = 1; i < d.Count && tree.Count < budget; i++)
                map[i] = tree.Add(d.Tokens[i], map[d.Parents[i]]);
        }
        return tree;
    }

    public void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab)
    {
        foreach (var p in parts) p.Update(history, tree, logits, vocab);
    }
}

/// <summary>The drafters by their command-line names.</summary>
public static class Drafters
{
    public static readonly string[] Names = ["none", "pld", "recycle", "lookahead", "aded", "auto"];

    /// <summary>A fresh drafter; null for "none" (plain decoding).</summary>
    public static IDrafter? Create(string name) => name switch
    {
        "none" => null,
        "pld" => new PromptLookup(),
        "recycle" => new TokenRecycling(),
        "lookahead" => new LookaheadTrie(),
        "aded" => new Aded(),
        "auto" => new CompositeDrafter("auto", new PromptLookup(minNgram: 2), new TokenRecycling()),
        _ => throw new PareException($"unknown drafter '{name}' (choose one of: {string.Join(", ", Names)})"),
    };
}
