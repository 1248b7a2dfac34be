namespace Pare.Speculative;

/// <summary>A training-free drafter: proposes a token tree from what it has seen, and learns from each verification.</summary>
public interface IDrafter
{
    /// <summary>Short name used on the command line ("pld", "recycle", "lookahead", "aded").</summary>
    string Name { get; }

    /// <summary>Called once with the prompt before generation (and its prefill logits when the caller has them, else empty).</summary>
    void Start(IReadOnlyList<int> prompt, ReadOnlySpan<float> promptLogits, int vocab);

    /// <summary>Drafts a tree rooted at the last token of <paramref name="history"/> with at most <paramref name="budget"/> nodes (root included).</summary>
    DraftTree Draft(IReadOnlyList<int> history, int budget);

    /// <summary>Learns from a verified tree: <paramref name="logits"/> is (tree.Count, vocab); <paramref name="history"/> now ends with the accepted tokens.</summary>
    void Update(IReadOnlyList<int> history, DraftTree tree, ReadOnlySpan<float> logits, int vocab);
}
