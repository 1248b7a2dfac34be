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

/// <summary>
/// A drafter that learns from the text alone (its n-grams), so it may skip <see cref="IDrafter.Update"/> while another
/// drafter is in use and catch up on the text before it drafts again (<see cref="DrafterChoice"/>: `auto:FILE`'s arms not
/// chosen cost nothing per step). What it would have learnt from the skipped trees' logits, if anything, is lost:
/// drafts may differ, output cannot (verification is lossless).
/// </summary>
public interface IHistoryLearner : IDrafter
{
    /// <summary>Learns from the first <paramref name="count"/> tokens of <paramref name="history"/> it has not seen yet.</summary>
    void CatchUp(IReadOnlyList<int> history, int count);
}
