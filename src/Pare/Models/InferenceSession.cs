using Pare.Kernels;
using Pare.Models.Kv;
using Pare.Tensors;

namespace Pare.Models;

/// <summary>
/// Runs a <see cref="LlamaModel"/>: holds the KV cache and scratch buffers, evaluates a batch of tokens
/// (prefill) or one token (decode) and returns logits. Not thread-safe; one session per conversation.
/// </summary>
/// <remarks>
/// Forward pass per block, as in Llama: x += Wo · attn(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x));
/// x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x)). Then logits = Output · norm(x).
/// SliceGPT models (<see cref="LlamaConfig.Sliced"/>): x has d' = Dim dimensions in a per-block PCA basis; the skip
/// path is rotated into the next basis before each add (x = S_attn·x + Wo·attn(...); x = S_ffn·x + Down·(...)), and
/// every norm divides the sum of squares by the original width D (<see cref="LlamaConfig.NormWidth"/>), not by d'.
/// </remarks>
public sealed partial class InferenceSession
{
    readonly LlamaModel _model;
    readonly LlamaConfig _c;
    readonly int _threads;
    // KV cache per layer. K: blocks of 16 positions, transposed inside a block (BlockedAttention); V: (context, kv_heads * head_dim),
    // position-major; stored as SessionOptions.KvType says.
    readonly KvCache _kv;
    // Scratch, grown to the largest batch seen.
    int _cap;
    // _qkv: q (n, q_dim), then k (n, kv_dim), then v (n, kv_dim); _gateUp: gate (n, ffn), then up (n, ffn). Each pair or
    // triple is one fused product (one pool dispatch in decode).
    float[] _x = [], _xb = [], _qkv = [], _att = [], _gateUp = [], _o = [], _ropeCos = [], _ropeSin = [];
    readonly WeightMatrix[][] _qkvWeights, _gateUpWeights;
    // KV policy (null = full cache): which cached positions each head reads; the last tree's queries per layer until CommitTree.
    readonly IKvPolicy? _policy;
    float[][] _treeQ = [];

    internal InferenceSession(LlamaModel model, SessionOptions options)
    {
        _model = model;
        _c = model.Config;
        if (options.Threads < 1) throw new PareException($"threads must be at least 1 (got {options.Threads})");
        _threads = options.Threads;
        int ctx = options.ContextLength ?? Math.Min(_c.ContextLength, 4096);
        if (ctx < 1) throw new PareException($"context length must be at least 1 (got {ctx})");
        ContextLength = ctx;
        _qkvWeights = [.. model.Weights.Layers.Select(lw => new[] { lw.Wq, lw.Wk, lw.Wv })];
        _gateUpWeights = [.. model.Weights.Layers.Select(lw => new[] { lw.Gate, lw.Up })];
        // Per-layer widths: heads differ between layers in structured-pruned (deci) models.
        _kv = new KvCache(_c, ctx, options.KvType);
        _policy = options.KvPolicy;
        if (_policy != null) _policy.OnRewind(0);
    }

    /// <summary>The KV policy (null: every head reads the whole cache).</summary>
    public IKvPolicy? KvPolicy => _policy;

    public LlamaModel Model => _model;
    /// <summary>Worker threads the kernels use.</summary>
    public int Threads => _threads;
    public int ContextLength { get; }
    /// <summary>The KV cache (its value type and size).</summary>
    public KvCache Cache => _kv;
    /// <summary>Tokens already in the KV cache; the next token goes at this position.</summary>
    public int Position { get; private set; }

    /// <summary>Forgets everything after the first <paramref name="position"/> tokens.</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > Position) throw new ArgumentOutOfRangeException(nameof(position));
        Position = position;
        _policy?.OnRewind(position);
    }

    public void Reset()
    {
        Position = 0;
        _policy?.OnRewind(0);
    }

    /// <summary>Evaluates <paramref name="tokens"/> at the next positions and returns the logits of the last one (vocab).</summary>
    public float[] Forward(ReadOnlySpan<int> tokens)
    {
        var logits = new float[_c.VocabSize];
        Forward(tokens, logits, allPositions: false);
        return logits;
    }

    /// <summary>Evaluates <paramref name="tokens"/> and returns the logits of every position, (n, vocab) row-major.</summary>
    public float[] ForwardAll(ReadOnlySpan<int> tokens)
    {
        var logits = new float[(long)tokens.Length * _c.VocabSize];
        Forward(tokens, logits, allPositions: true);
        return logits;
    }

    /// <summary>
    /// Evaluates a draft tree in one pass: node i sits at position <see cref="Position"/> + depth(i) and attends to the
    /// committed prefix and its own ancestors only. Returns the logits of every node, (tree.Count, vocab). The nodes'
    /// KV entries are scratch until <see cref="CommitTree"/> keeps the accepted path; <see cref="Position"/> does not move.
    /// </summary>
    public float[] ForwardTree(ITokenTree tree)
    {
        var logits = new float[(long)tree.Count * _c.VocabSize];
        ForwardTree(tree, logits);
        return logits;
    }

    /// <summary>As <see cref="ForwardTree(ITokenTree)"/>, into <paramref name="logits"/> (at least tree.Count x vocab).</summary>
    public void ForwardTree(ITokenTree tree, Span<float> logits)
    {
        if (logits.Length < (long)tree.Count * _c.VocabSize) throw new ArgumentException("logits needs tree.Count x vocab values", nameof(logits));
        Forward(tree.TokenIds, logits, allPositions: true, tree);
    }

    /// <summary>
    /// Evaluates the nodes <paramref name="from"/>.. of <paramref name="tree"/> in one pass, when a previous
    /// <see cref="ForwardTree(ITokenTree, Span{float})"/> or <see cref="ForwardTree(ITokenTree, int, Span{float})"/> at
    /// this <see cref="Position"/> left the KV entries of nodes 0..from - 1 of the same tree (the tree only grew since):
    /// node i sits at position <see cref="Position"/> + depth(i), its KV entry at <see cref="Position"/> + i, and it
    /// attends to the prefix and its ancestors. Writes the new nodes' logits, (tree.Count - from, vocab), into
    /// <paramref name="logits"/>. A tree grown level by level costs one pass per level over its new nodes only.
    /// </summary>
    public void ForwardTree(ITokenTree tree, int from, Span<float> logits)
    {
        if (from < 0 || from >= tree.Count) throw new ArgumentOutOfRangeException(nameof(from));
        if (logits.Length < (long)(tree.Count - from) * _c.VocabSize) throw new ArgumentException("logits needs (tree.Count - from) x vocab values", nameof(logits));
        Forward(tree.TokenIds[from..], logits, allPositions: true, tree, from);
    }

    /// <summary>Keeps the KV entries of the accepted path of the last <see cref="ForwardTree"/> (node indices in root-to-leaf order)
    /// at consecutive positions, and advances <see cref="Position"/> past them.</summary>
    public void CommitTree(IReadOnlyList<int> path)
    {
        for (int k = 0; k < path.Count; k++)
        {
            int node = path[k];
            if (node < k || Position + node >= ContextLength) throw new ArgumentException("path nodes must be increasing tree indices", nameof(path));
            if (node == k) continue;
            for (int l = 0; l < _c.Layers; l++) _kv.Move(l, Position + node, Position + k);
        }
        if (_policy != null)
            for (int l = 0; l < _c.Layers; l++)
            {
                int qd = _c.HeadsAt(l) * _c.HeadDim;
                var pq = new float[path.Count * qd];
                for (int k = 0; k < path.Count; k++) _treeQ[l].AsSpan(path[k] * qd, qd).CopyTo(pq.AsSpan(k * qd, qd));
                var (kc, vc) = _kv.Read(l, Position + path.Count);
                _policy.OnAppend(l, pq, path.Count, Position, new KvView(kc.Span, vc.Span, ContextLength, _c.HeadsAt(l), _c.KvHeadsAt(l), _c.HeadDim, _threads));
            }
        Position += path.Count;
    }

    /// <summary>Evaluates tokens; writes the last position's logits (or all positions' when <paramref name="allPositions"/>).</summary>
    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions) => Forward(tokens, logits, allPositions, tree: null);

    void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions, ITokenTree? tree, int from = 0)
    {
        int n = tokens.Length;
        if (n == 0) throw new PareException("no tokens to evaluate");
        if (Position + from + n > ContextLength)
            throw new PareException($"context is full: {Position} + {from + n} tokens exceed the context length {ContextLength}");
        foreach (int t in tokens)
            if ((uint)t >= (uint)_c.VocabSize) throw new PareException($"token id {t} is out of range (vocabulary size {_c.VocabSize})");
        Ensure(n);
        var w = _model.Weights;
        int dim = _c.Dim, normWidth = _c.NormWidth ?? dim; // normWidth: D of a SliceGPT model, else dim
        var x = _x.AsSpan(0, n * dim);

        for (int t = 0; t < n; t++) Dequant.Row(w.TokenEmbedding.Type, w.TokenEmbedding.Row(tokens[t]), x.Slice(t * dim, dim));
        // Rotation angles once per token, shared by every layer's q and k.
        int half = _c.RopeDim / 2;
        var cos = _ropeCos.AsSpan(0, n * half);
        var sin = _ropeSin.AsSpan(0, n * half);
        for (int t = 0; t < n; t++)
            Ops.RopeAngles(Position + (tree == null ? t : tree.Depths[from + t]), _c.RopeDim, _c.RopeBase, cos.Slice(t * half, half), sin.Slice(t * half, half));

        for (int l = 0; l < _c.Layers; l++)
        {
            var lw = w.Layers[l];
            // This layer's widths (the same in every layer unless structured pruning made them differ).
            int heads = _c.HeadsAt(l), kvHeads = _c.KvHeadsAt(l), qd = heads * _c.HeadDim, kvd = kvHeads * _c.HeadDim, ffn = _c.FfnAt(l);
            // Attention.
            var xb = _xb.AsSpan(0, n * dim);
            for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), lw.AttnNorm, _c.RmsEps, xb.Slice(t * dim, dim), normWidth);
            var q = _qkv.AsSpan(0, n * qd);
            var k = _qkv.AsSpan(n * qd, n * kvd);
            var v = _qkv.AsSpan(n * (qd + kvd), n * kvd);
            MatMul.MatMulRowsFused(_qkvWeights[l], xb, n, _qkv.AsSpan(0, n * (qd + 2 * kvd)), _threads); // q, k, v
            for (int t = 0; t < n; t++)
            {
                if (lw.Bq != null) AddInPlace(q.Slice(t * qd, qd), lw.Bq);
                if (lw.Bk != null) AddInPlace(k.Slice(t * kvd, kvd), lw.Bk);
                if (lw.Bv != null) AddInPlace(v.Slice(t * kvd, kvd), lw.Bv);
                Ops.Rope(q.Slice(t * qd, qd), heads, _c.HeadDim, cos.Slice(t * half, half), sin.Slice(t * half, half), _c.RopeLayout);
                Ops.Rope(k.Slice(t * kvd, kvd), kvHeads, _c.HeadDim, cos.Slice(t * half, half), sin.Slice(t * half, half), _c.RopeLayout);
            }
            _kv.Write(l, k, v, n, Position + from);
            Attention(l, n, tree, from, q, heads, kvHeads);                             // _att (n, q_dim)
            var o = _o.AsSpan(0, n * dim);
            MatMul.MatMulRows(lw.Wo, _att.AsSpan(0, n * qd), n, o, _threads);          // (n, dim)
            if (lw.Bo != null) AddBias(o, lw.Bo, n);
            if (lw.AttnShortcut != null) Shortcut(lw.AttnShortcut, x, xb, n);             // SliceGPT: x (n, d') = x · S_attnᵀ
            AddInPlace(x, o);

            // Feed-forward (SwiGLU).
            for (int t = 0; t < n; t++) Ops.RmsNorm(x.Slice(t * dim, dim), lw.FfnNorm, _c.RmsEps, xb.Slice(t * dim, dim), normWidth);
            var gate = _gateUp.AsSpan(0, n * ffn);
            var up = _gateUp.AsSpan(n * ffn, n * ffn);
            MatMul.MatMulRowsFused(_gateUpWeights[l], xb, n, _gateUp.AsSpan(0, 2 * n * ffn), _threads); // gate, up
            Ops.SwiGlu(gate, up);
            MatMul.MatMulRows(lw.Down, gate, n, o, _threads);                           // (n, dim)
            if (lw.BDown != null) AddBias(o, lw.BDown, n);
            if (lw.FfnShortcut != null) Shortcut(lw.FfnShortcut, x, xb, n);               // SliceGPT: x (n, d') = x · S_ffnᵀ
            AddInPlace(x, o);
        }

        // Output head: only the positions asked for.
        int first = allPositions ? 0 : n - 1, m = n - first;
        var xo = _xb.AsSpan(0, m * dim);
        for (int t = 0; t < m; t++) Ops.RmsNorm(x.Slice((first + t) * dim, dim), w.OutputNorm, _c.RmsEps, xo.Slice(t * dim, dim), normWidth);
        MatMul.MatMulRows(w.Output, xo, m, logits[..(m * _c.VocabSize)], _threads);
        if (tree == null) Position += n;
    }

    /// <summary>Causal grouped-query attention of the n new tokens over the cache: _att (n, heads * head_dim).
    /// With a tree, new token t sees the prefix and its ancestors only.</summary>
    void Attention(int layer, int n, ITokenTree? tree, int from, ReadOnlySpan<float> q, int heads, int kvHeads)
    {
        var parents = tree == null ? default : tree.ParentIds[..(from + n)];
        var att = _att.AsSpan(0, n * heads * _c.HeadDim);
        if (_policy == null)
        {
            _kv.Attend(layer, q, n, heads, Position, att, _threads, parents, treeOffset: from);
            return;
        }
        // Trees grown level by level (draft sessions) run without a policy.
        if (from != 0) throw new InvalidOperationException("a KV policy needs whole-tree evaluation (from = 0)");
        var (kCache, vCache) = _kv.Read(layer, Position + n);
        var view = new KvView(kCache.Span, vCache.Span, ContextLength, heads, kvHeads, _c.HeadDim, _threads);
        SelectedAttentionStep(layer, n, tree, q, view, att, parents);
        int qd = heads * _c.HeadDim;
        if (tree == null) _policy.OnAppend(layer, q[..(n * qd)], n, Position, view);
        else
        {
            if (_treeQ.Length != _c.Layers) _treeQ = new float[_c.Layers][];
            if (_treeQ[layer] == null || _treeQ[layer].Length < n * qd) _treeQ[layer] = new float[n * qd];
            q[..(n * qd)].CopyTo(_treeQ[layer]);
        }
    }

    /// <summary>
    /// The position-selection hook: asks the policy which prefix positions each new token's heads read; when it keeps
    /// everything for every token the dense kernel runs (bitwise the full cache), else each (token, head) attends to its
    /// selection plus its own chunk (causal) or tree ancestors.
    /// </summary>
    void SelectedAttentionStep(int layer, int n, ITokenTree? tree, ReadOnlySpan<float> q, in KvView view, Span<float> att, ReadOnlySpan<int> parents)
    {
        int heads = view.Heads, hd = _c.HeadDim, qd = heads * hd, group = view.Group;
        if (Position == 0)
        {
            // Nothing committed: a selection could only name positions of this chunk, which it reads in full anyway.
            _kv.Attend(layer, q, n, heads, Position, att, _threads, parents);
            return;
        }
        var selections = new int[][]?[n];
        bool any = false;
        for (int t = 0; t < n; t++)
        {
            int qpos = Position + (tree == null ? t : tree.Depths[t]);
            selections[t] = _policy!.Select(layer, t, q.Slice(t * qd, qd), qpos, Position, view);
            any |= selections[t] != null;
        }
        if (!any)
        {
            _kv.Attend(layer, q, n, heads, Position, att, _threads, parents);   // the full cache's kernel, bitwise
            return;
        }
        int[]? all = null;
        var own = new List<int>();
        var prefix = new int[heads][];
        var counts = new int[heads];
        for (int t = 0; t < n; t++)
        {
            own.Clear();
            if (tree == null) for (int j = 0; j <= t; j++) own.Add(Position + j);
            else for (int j = t; j >= 0; j = parents[j]) own.Add(Position + j);
            var sel = selections[t];
            for (int h = 0; h < heads; h++)
            {
                var s = sel?[h] ?? (all ??= [.. Enumerable.Range(0, Position)]);
                int cut = s.Length;
                while (cut > 0 && s[cut - 1] >= Position) cut--;   // the policy's window may reach into this chunk
                prefix[h] = s; counts[h] = cut;
            }
            var ownSpan = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(own);
            if (_policy!.Renumber) AttendRenumbered(q.Slice(t * qd, qd), view, prefix, counts, ownSpan, att.Slice(t * qd, qd), _policy.KeyRows(layer));
            else if (_policy.KeyRows(layer) is { IsEmpty: false } rows && counts[0] > 0 && SharedSelection(prefix, counts))
                RowsAttention.AttendShared(q.Slice(t * qd, qd), heads, view.KvHeads, hd, rows, view.K, ContextLength, view.V, prefix[0].AsSpan(0, counts[0]),
                    ownSpan, att.Slice(t * qd, qd), _threads);
            else SelectedAttention.AttendHeads(q.Slice(t * qd, qd), heads, view.KvHeads, hd, view.K, ContextLength, view.V, prefix, counts,
                ownSpan, att.Slice(t * qd, qd), _threads);
        }
    }

    /// <summary>Every head reads the same positions (the same array and count).</summary>
    static bool SharedSelection(int[][] prefix, int[] counts)
    {
        for (int h = 1; h < prefix.Length; h++)
            if (!ReferenceEquals(prefix[h], prefix[0]) || counts[h] != counts[0]) return false;
        return true;
    }

    static void AddInPlace(Span<float> x, ReadOnlySpan<float> y) => Ops.Axpy(1f, y, x);

    /// <summary>SliceGPT's skip path: the residual x (n, d') moved into the next block basis, x ← S·x per row, through
    /// <paramref name="scratch"/> (n, d'; free at this point of the block).</summary>
    void Shortcut(WeightMatrix s, Span<float> x, Span<float> scratch, int n)
    {
        MatMul.MatMulRows(s, x, n, scratch, _threads);
        scratch.CopyTo(x);
    }

    /// <summary>Adds a bias (width) to each of the n rows of y.</summary>
    static void AddBias(Span<float> y, float[] bias, int n)
    {
        for (int t = 0; t < n; t++) AddInPlace(y.Slice(t * bias.Length, bias.Length), bias);
    }

    void Ensure(int n)
    {
        if (n <= _cap) return;
        _cap = Math.Max(n, Math.Min(2 * _cap, 512));
        int dim = _c.Dim, qd = _c.QDim, kvd = _c.KvDim, ffn = _c.FfnDim;
        _x = new float[_cap * dim]; _xb = new float[_cap * dim]; _o = new float[_cap * dim];
        _qkv = new float[_cap * (qd + 2 * kvd)]; _att = new float[_cap * qd];
        _gateUp = new float[_cap * 2 * ffn];
        _ropeCos = new float[_cap * (_c.RopeDim / 2)]; _ropeSin = new float[_cap * (_c.RopeDim / 2)];
    }
}
