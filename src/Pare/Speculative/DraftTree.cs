namespace Pare.Speculative;

/// <summary>
/// A tree of candidate tokens, flattened in topological order. Node 0 is the root: the last accepted token, not yet
/// evaluated. Every other node is a drafted continuation of its parent (parent index &lt; node index). One forward pass
/// over all nodes, each attending to the committed prefix and its own ancestors, gives the target's distribution
/// after every node.
/// </summary>
public sealed class DraftTree : Models.ITokenTree
{
    readonly List<int> _tokens = [];
    readonly List<int> _parents = [];
    readonly List<int> _depths = [];

    public DraftTree(int rootToken) => Add(rootToken, -1);

    public int Count => _tokens.Count;
    public IReadOnlyList<int> Tokens => _tokens;
    /// <summary>Parent of each node; -1 for the root.</summary>
    public IReadOnlyList<int> Parents => _parents;
    /// <summary>Distance from the root (root = 0): the node sits at position prefix + depth.</summary>
    public IReadOnlyList<int> Depths => _depths;

    internal ReadOnlySpan<int> TokenSpan => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens);
    internal ReadOnlySpan<int> ParentSpan => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_parents);
    ReadOnlySpan<int> Models.ITokenTree.TokenIds => TokenSpan;
    ReadOnlySpan<int> Models.ITokenTree.ParentIds => ParentSpan;

    /// <summary>Adds a child of <paramref name="parent"/> carrying <paramref name="token"/>; returns its index (or the existing child's).</summary>
    public int Add(int token, int parent)
    {
        if (parent >= _tokens.Count) throw new ArgumentOutOfRangeException(nameof(parent));
        if (parent >= 0)
        {
            int existing = Child(parent, token);
            if (existing >= 0) return existing;
        }
        _tokens.Add(token);
        _parents.Add(parent);
        _depths.Add(parent < 0 ? 0 : _depths[parent] + 1);
        return _tokens.Count - 1;
    }

    /// <summary>Adds a chain of tokens under <paramref name="parent"/>, sharing existing prefixes; stops at <paramref name="budget"/> nodes.</summary>
    public void AddChain(ReadOnlySpan<int> tokens, int parent, int budget)
    {
        foreach (int t in tokens)
        {
            if (Child(parent, t) < 0 && Count >= budget) return;
            parent = Add(t, parent);
        }
    }

    /// <summary>The child of <paramref name="node"/> carrying <paramref name="token"/>, or -1.</summary>
    public int Child(int node, int token)
    {
        for (int i = node + 1; i < _tokens.Count; i++)
            if (_parents[i] == node && _tokens[i] == token) return i;
        return -1;
    }

    /// <summary>Whether <paramref name="a"/> is <paramref name="b"/> or one of its ancestors.</summary>
    public bool IsAncestorOrSelf(int a, int b)
    {
        while (b > a) b = _parents[b];
        return a == b;
    }

    /// <summary>A chain (plain decoding of several known tokens) as a tree.</summary>
    public static DraftTree Chain(ReadOnlySpan<int> tokens)
    {
        var t = new DraftTree(tokens[0]);
        for (int i = 1; i < tokens.Length; i++) t.Add(tokens[i], i - 1);
        return t;
    }
}
