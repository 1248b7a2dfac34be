using Pare.Generation;
using Pare.Kernels;
using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// A drafter that drafts with a model and can draft for sampled verification: children drawn from the draft's own
/// processed distribution q, verified with the speculative sampling rule (<see cref="SpeculativeSampling"/>).
/// </summary>
public interface IModelDrafter : IDrafter
{
    /// <summary>Drafts a tree for sampling with <paramref name="sampling"/> (temperature &gt; 0), its randomness from <paramref name="rng"/>.</summary>
    ModelDraft DraftSampled(IReadOnlyList<int> history, int budget, SamplingOptions sampling, Random rng);

    /// <summary>The draft session (KV cache size and scratch are reported from it).</summary>
    DraftModelRunner Runner { get; }
}

/// <summary>
/// A draft tree with what sampled verification needs: the trials in the order verification tries them, each a child
/// proposed under its parent either deterministically (q = a point mass: accepted with probability p(x)) or as a
/// sample from a draft distribution q (accepted with probability min(1, p(x)/q(x))). Several trials may carry the
/// same child (repeated samples). The number of trials at a node never depends on its own samples, nor on samples
/// below it (drafters decide the trials of a level before they draw it), which keeps recursive rejection lossless.
/// </summary>
public sealed class ModelDraft
{
    public ModelDraft(int rootToken) { Tree = new DraftTree(rootToken); PathProb.Add(1.0); }

    public DraftTree Tree { get; }
    /// <summary>Draft probability of each node's path (product of q along it; root 1).</summary>
    public List<double> PathProb { get; } = [];
    /// <summary>(parent node, child node, index into <see cref="Q"/> or -1 for a deterministic proposal), in verification order.</summary>
    public List<(int Parent, int Child, int Q)> Trials { get; } = [];
    /// <summary>Dense draft distributions (vocab each) the sampled trials were drawn from.</summary>
    public List<float[]> Q { get; } = [];

    /// <summary>Adds <paramref name="token"/> under <paramref name="parent"/> as a trial; returns the child and whether it is new.</summary>
    public (int Child, bool New) AddTrial(int parent, int token, int q, double pathProb)
    {
        int before = Tree.Count;
        int child = Tree.Add(token, parent);
        bool isNew = Tree.Count > before;
        if (isNew) PathProb.Add(pathProb);
        Trials.Add((parent, child, q));
        return (child, isNew);
    }
}

/// <summary>
/// The draft model's own session beside the target's. Its KV cache holds a prefix of the target's history: before each
/// draft it is rewound to the longest prefix it shares with the history (the target's accepted path) and only the rest
/// is evaluated, so accepted drafts the draft model already evaluated cost nothing again. Its cache is as long as the
/// target's context (bounded, <see cref="KvCacheBytes"/>); tree passes reuse one logits buffer (<see cref="ScratchBytes"/>).
/// </summary>
public sealed class DraftModelRunner : IDisposable
{
    readonly InferenceSession _session;
    readonly bool _ownsModel;
    // The cache holds history[_offset..][.._cached.Count] at positions 0.. (_offset > 0 after a windowed catch-up).
    readonly List<int> _cached = [];
    int _offset;
    readonly int _vocab;
    float[] _logits = [];
    int[] _ids = new int[64];
    float[] _probs = [];
    // The tree of the last EvaluateTree, how many of its nodes were evaluated, at which position (incremental levels).
    DraftTree? _tree;
    int _treeDone, _treePosition;

    /// <param name="ownsModel">Dispose <paramref name="model"/> with this runner (a draft model loaded for it).</param>
    public DraftModelRunner(LlamaModel model, int contextLength, int threads, bool ownsModel = false)
    {
        _ownsModel = ownsModel;
        _session = model.CreateSession(new SessionOptions { ContextLength = contextLength, Threads = threads });
        _vocab = model.Config.VocabSize;
        _logits = new float[_vocab];
    }

    public LlamaModel Model => _session.Model;
    public int Vocab => _vocab;
    public int ContextLength => _session.ContextLength;
    /// <summary>Bytes of the draft session's KV cache (allocated once, for its whole context).</summary>
    public long KvCacheBytes
    {
        get
        {
            var c = Model.Config;
            return (long)c.Layers * (BlockedAttention.CacheFloats(ContextLength, c.KvHeads, c.HeadDim) + (long)ContextLength * c.KvDim) * sizeof(float);
        }
    }
    /// <summary>Bytes of the logits and probability scratch (grows to the largest tree drafted, at most budget x vocab).</summary>
    public long ScratchBytes => ((long)_logits.Length + _probs.Length) * sizeof(float);
    /// <summary>Evaluate only a grown tree's new nodes (default true); false re-evaluates the whole tree at every level (the
    /// earlier behaviour, kept for the draft-cost comparison in benchmarks/Pare.Benchmarks).</summary>
    public bool Incremental { get; init; } = true;
    /// <summary>
    /// When the cache lags the history by more than this many tokens, start it afresh on the last this many (0 = always
    /// catch up on all of it; default). The draft session of `auto:FILE` is not advanced while drafter-free arms draft,
    /// and a model arm re-measured hundreds of steps later (or at a new prompt) caught up on the whole text first: a
    /// prefill of the prompt and output on the draft model charged to one step. Drafts need the recent text only (they
    /// are verified: a shorter context can cost acceptance, never correctness).
    /// </summary>
    public int CatchUpWindow { get; init; }
    /// <summary>Draft forward passes and the tokens they evaluated (tree nodes included).</summary>
    public long Passes { get; private set; }
    public long TokensEvaluated { get; private set; }

    public void Dispose() { if (_ownsModel) Model.Dispose(); }

    /// <summary>
    /// Does now what the draft model's first passes would do on the way: the first touch of its mapped weights and the
    /// repacking of its narrow F32 matrices for multi-token products (<c>F32Panels</c>, built on first use), then forgets the
    /// cache. On pare-ref-draft that was 50-130 ms under load (15-20 ms quiet) charged to the first step a model arm drafted:
    /// most of what session 12 measured as `auto:FILE`'s first trials, once per draft model loaded (bench-spec loads one per
    /// lane). Load time, as the target's own preparation is; bench-spec calls it before anything is timed.
    /// </summary>
    public void Prepare()
    {
        Reset();
        _session.Forward([0]);
        _session.ForwardTree(DraftTree.Chain([0, 0]));
        Reset();
    }

    /// <summary>Forgets the cache (a new sequence).</summary>
    public void Reset() { _session.Reset(); _cached.Clear(); _offset = 0; _tree = null; }

    /// <summary>Brings the cache to all of <paramref name="history"/>; returns the draft logits after its last token.</summary>
    public ReadOnlySpan<float> Sync(IReadOnlyList<int> history)
    {
        // The last token is re-evaluated when already cached: its logits are what the caller needs.
        Catch(history, history.Count - 1);
        Feed(history, _offset + _session.Position, history.Count, _logits.AsSpan(0, _vocab));
        return _logits.AsSpan(0, _vocab);
    }

    /// <summary>Appends <paramref name="token"/> to the cache (after <see cref="Sync"/>); returns the logits after it.</summary>
    public ReadOnlySpan<float> Append(int token)
    {
        if (_session.Position >= _session.ContextLength) throw new PareException("the draft model's context is full");
        _ids[0] = token;
        _tree = null;
        _session.Forward(_ids.AsSpan(0, 1), _logits.AsSpan(0, _vocab), allPositions: false);
        _cached.Add(token);
        Passes++; TokensEvaluated++;
        return _logits.AsSpan(0, _vocab);
    }

    /// <summary>Room left in the draft cache after <paramref name="history"/> (tree nodes sit at prefix + depth).</summary>
    public int Room(IReadOnlyList<int> history) => _session.ContextLength - history.Count;

    /// <summary>
    /// Evaluates <paramref name="tree"/> (rooted at the last token of <paramref name="history"/>) in one pass over the
    /// cached prefix; the logits of every node, (tree.Count, vocab), valid until the next call.
    /// </summary>
    public ReadOnlySpan<float> EvaluateTree(IReadOnlyList<int> history, DraftTree tree)
    {
        Catch(history, history.Count - 1);
        if (_offset + _session.Position < history.Count - 1) Feed(history, _offset + _session.Position, history.Count - 1, _logits.AsSpan(0, _vocab));
        // The same tree grown since its last pass at this position: its evaluated nodes' KV entries and logits stand,
        // only the new nodes (a level) are evaluated, in one pass.
        int from = Incremental && ReferenceEquals(tree, _tree) && _treePosition == _session.Position && _treeDone <= tree.Count ? _treeDone : 0;
        if (_logits.Length < (long)tree.Count * _vocab)
        {
            var grown = new float[tree.Count * _vocab]; // exactly the tree: scratch stays budget x vocab
            _logits.AsSpan(0, from * _vocab).CopyTo(grown);
            _logits = grown;
        }
        if (from < tree.Count)
        {
            _session.ForwardTree(tree, from, _logits.AsSpan(from * _vocab, (tree.Count - from) * _vocab));
            Passes++; TokensEvaluated += tree.Count - from;
        }
        _tree = tree; _treeDone = tree.Count; _treePosition = _session.Position;
        return _logits.AsSpan(0, tree.Count * _vocab);
    }

    /// <summary>Softmax at temperature 1 of one logits row into a reused buffer (draft path probabilities).</summary>
    public ReadOnlySpan<float> Probabilities(ReadOnlySpan<float> logits)
    {
        if (_probs.Length < logits.Length) _probs = new float[logits.Length];
        var p = _probs.AsSpan(0, logits.Length);
        logits.CopyTo(p);
        Ops.Softmax(p);
        return p;
    }

    /// <summary>
    /// Rewinds the cache to the longest prefix shared with history (up to <paramref name="limit"/> tokens), or, when more
    /// than <see cref="CatchUpWindow"/> tokens would then be left to feed, empties it to start at limit - window.
    /// </summary>
    void Catch(IReadOnlyList<int> history, int limit)
    {
        int common = 0, max = Math.Min(limit - _offset, _cached.Count);
        while (common < max && _cached[common] == history[_offset + common]) common++;
        if (common == 0 || (CatchUpWindow > 0 && limit - (_offset + common) > CatchUpWindow))
        {
            common = 0;
            _offset = CatchUpWindow > 0 ? Math.Max(0, limit - CatchUpWindow) : 0;
        }
        _session.Rewind(common);
        _cached.RemoveRange(common, _cached.Count - common);
    }

    void Feed(IReadOnlyList<int> history, int from, int to, Span<float> logits)
    {
        int n = to - from;
        if (n <= 0) return;
        if (_ids.Length < n) _ids = new int[Math.Max(n, 64)];
        _tree = null;
        for (int i = 0; i < n; i++) _ids[i] = history[from + i];
        _session.Forward(_ids.AsSpan(0, n), logits, allPositions: false);
        for (int i = 0; i < n; i++) _cached.Add(_ids[i]);
        Passes++; TokensEvaluated += n;
    }
}

/// <summary>The draft distribution q for sampled drafting: the draft logits processed as the target's (temperature, top-k/p, min-p).</summary>
internal sealed class DraftDistribution(SamplingOptions sampling, int vocab)
{
    readonly Sampler _sampler = new(sampling with { RepetitionPenalty = 1f, BannedTokens = [] });

    /// <summary>Dense q over the vocabulary into <paramref name="q"/> (zeros outside the kept tokens).</summary>
    public void Fill(ReadOnlySpan<float> logits, float[] q)
    {
        Array.Clear(q);
        var (tokens, probs, count) = _sampler.Probabilities(logits);
        for (int i = 0; i < count; i++) q[tokens[i]] = probs[i];
    }

    /// <summary>A draw from a dense distribution.</summary>
    public static int Draw(ReadOnlySpan<float> q, Random rng)
    {
        double r = rng.NextDouble(), cum = 0;
        int last = 0;
        for (int i = 0; i < q.Length; i++)
        {
            if (q[i] <= 0) continue;
            cum += q[i];
            last = i;
            if (r < cum) return i;
        }
        return last;
    }

    /// <summary>A pool of dense rows, reused across steps (at most budget rows live).</summary>
    public float[] Row(ModelDraft d, List<float[]> pool)
    {
        int i = d.Q.Count;
        while (pool.Count <= i) pool.Add(new float[vocab]);
        d.Q.Add(pool[i]);
        return pool[i];
    }
}
