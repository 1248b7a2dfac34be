namespace Pare.Models;

/// <summary>
/// Tokens evaluated as a tree in one forward pass (<see cref="InferenceSession.ForwardTree(ITokenTree)"/>): node i
/// carries a token, has a parent (-1 for the root; parents come before their children) and sits at position prefix +
/// depth, attending to the committed prefix and its own ancestors only. Speculative decoding's draft trees implement it.
/// </summary>
public interface ITokenTree
{
    /// <summary>Number of nodes.</summary>
    int Count { get; }
    /// <summary>Distance of each node from the root (root = 0).</summary>
    IReadOnlyList<int> Depths { get; }
    /// <summary>The token of each node.</summary>
    ReadOnlySpan<int> TokenIds { get; }
    /// <summary>The parent of each node; -1 for the root.</summary>
    ReadOnlySpan<int> ParentIds { get; }
}
