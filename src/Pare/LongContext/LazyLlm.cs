using Pare.Models;

namespace Pare.LongContext;

/// <summary>LazyLLM settings (Fu et al. 2024; no official code: the schedule is the paper's shape, cumulative keep shrinking with depth).</summary>
public sealed record LazyLlmOptions
{
    /// <summary>Share of the still-computed prompt tokens kept at each pruning layer, in (0, 1]; 1 = no pruning (full prefill).</summary>
    public double Keep { get; init; } = 0.5;
    /// <summary>Pruning layers as fractions of the depth (layer = round(fraction x layers), 1 .. layers-1); at the j-th the prompt
    /// keeps Keep^j of its tokens, so deeper layers see fewer.</summary>
    public IReadOnlyList<double> PruneAt { get; init; } = [0.25, 0.5, 0.75];
    /// <summary>Per pruning layer (ascending) its own keep share, overriding <see cref="Keep"/> (a schedule that prunes harder
    /// in deeper layers, e.g. 0.9, 0.6, 0.3); null (default) = <see cref="Keep"/> at every pruning layer.</summary>
    public IReadOnlyList<double>? KeepAt { get; init; }
    /// <summary>Observation window: the importance is the attention from the last <see cref="Window"/> still-computed prompt tokens
    /// (each over its causal prefix), averaged over them (SnapKV's window; the window itself is always kept). 1 (default) = the
    /// paper's last token only.</summary>
    public int Window { get; init; } = 1;
    /// <summary>Reduce the per-head importance by the maximum over heads instead of the paper's mean (a token one head needs stays).</summary>
    public bool MaxOverHeads { get; init; }
    /// <summary>Reduce over the observation window's queries by the maximum instead of the mean (a variant, not the paper's: a
    /// question token that looks at the needle keeps it even if the other window tokens look elsewhere). Only with Window > 1.</summary>
    public bool MaxOverWindow { get; init; }
    /// <summary>Max-pool the importance over this many neighbours (odd; centred; in the sequence of tokens still computed), as
    /// SnapKV's pooling kernel: a kept token keeps its neighbours, so a key's digits stay with the words that locate it (a
    /// variant, not the paper's). 1 (default) = no pooling.</summary>
    public int Pool { get; init; } = 1;
    /// <summary>Score a pruning layer by its own attention instead of the layer below's (a variant, not the paper's): before
    /// pruning at layer l, layer l's keys of every still-computed token and the observation window's queries are computed
    /// (a K projection and norm over every still-computed token, the kept ones' again in the block: ~0.3% of the prefill at
    /// keep 0.3), so the importance is the
    /// look-up layer l is about to do. For a model whose retrieval happens in one middle layer and whose layers below it
    /// do not look at the needle (pare-long 4m: layers 4 and 6), the only signal that can prune at that layer. false
    /// (default) = the paper's layer below.</summary>
    public bool SameLayer { get; init; }

    /// <summary>The keep share at each pruning layer (ascending) of <paramref name="layers"/>; a one-line error for a bad schedule.</summary>
    public IReadOnlyDictionary<int, double> Schedule(int layers)
    {
        var at = LazyLlm.PruneLayers(this, layers).Order().ToArray();
        if (Window < 1) throw new PareException($"the LazyLLM observation window must be at least 1 token (got {Window})");
        if (Pool < 1 || Pool % 2 == 0) throw new PareException($"the LazyLLM pooling kernel (--lazy-pool) must be an odd number of tokens >= 1 (got {Pool})");
        if (MaxOverWindow && Window < 2) throw new PareException("the maximum over the observation window (--lazy-window-reduce max) needs --lazy-window of at least 2");
        if (KeepAt != null && KeepAt.Count != at.Length)
            throw new PareException($"--keep gives {KeepAt.Count} shares for {at.Length} pruning layers ({string.Join(", ", at)}): give one, or one per layer");
        foreach (double k in KeepAt ?? [Keep])
            if (!(k > 0 && k <= 1)) throw new PareException($"--keep must be in (0, 1] (got {k})");
        return at.Select((l, i) => (l, k: KeepAt?[i] ?? Keep)).ToDictionary(e => e.l, e => e.k);
    }
}

/// <summary>
/// LazyLLM: progressive layer-wise pruning of prompt tokens during prefill. Before each pruning layer, a token's importance is
/// the attention it gets from the prompt's last token in the layer below, averaged over heads; the lowest-scoring tokens
/// are deferred (the last token never is): the layers above run on the kept tokens only (a compacted causal sequence, keys
/// rotated at their true positions), which is what makes the first token faster. A deferred token's hidden state at the
/// layer where it stopped goes to the aux cache; <see cref="LazyPrefill.Revive"/> later resumes every deferred token from
/// there, layer by layer, so each token is computed at most once per layer and the cache ends up complete (the paper revives
/// tokens when a later step needs them; Pare revives them all before the second token).
/// </summary>
public static class LazyLlm
{
    /// <summary>Prefills <paramref name="prompt"/> from an empty cache with pruning; returns the last token's logits and the aux cache.</summary>
    public static LazyPrefill Prefill(InferenceSession session, ReadOnlySpan<int> prompt, LazyLlmOptions options)
    {
        var c = session.Model.Config;
        var schedule = options.Schedule(c.Layers);
        if (c.Sliced) throw new PareException("LazyLLM does not support SliceGPT models");
        int n = prompt.Length, dim = c.Dim, layers = c.Layers;
        if (n == 0) throw new PareException("no tokens to evaluate");
        if (n > session.ContextLength) throw new PareException($"context is full: {n} tokens exceed the context length {session.ContextLength}");
        session.Reset();
        var deferredAt = Enumerable.Repeat(layers, n).ToArray();
        var x = session.Embed(prompt);
        int[] kept = [.. Enumerable.Range(0, n)];
        var aux = new Dictionary<int, (int[] Pos, float[] H)>();
        var lastQ = new float[options.Window * c.Heads * c.HeadDim];   // the observation window's queries (last token last)
        for (int l = 0; l < layers; l++)
        {
            int m = Math.Min(options.Window, kept.Length);                // window tokens: the last m still computed, always kept
            if (schedule.TryGetValue(l, out double keep) && keep < 1 && kept.Length > m)
            {
                // The paper's importance: the layer below's attention (its window queries kept by ForwardBlock); SameLayer: this
                // layer's, from its keys of every kept token and the window's queries, computed first.
                var windowQ = lastQ.AsSpan(0, m * (options.SameLayer ? c.HeadsAt(l) : c.Heads) * c.HeadDim);
                var score = options.SameLayer ? Importance(session, l, kept, windowQ, m, options, session.LayerKeys(l, x, kept, windowQ))
                    : Importance(session, l - 1, kept, windowQ, m, options, null);
                int keepN = Math.Max(m, (int)Math.Ceiling(kept.Length * keep));
                var keepMask = KeepMask(score, kept.Length - m, keepN - m);
                int deferredN = kept.Length - keepN;
                if (deferredN > 0)
                {
                    // Deferred rows go to the aux cache; kept rows move up in place (ascending, so a row never overwrites
                    // one still to be read): no new (n, dim) array per pruning layer.
                    var h = GC.AllocateUninitializedArray<float>(deferredN * dim);
                    var pos = new int[deferredN];
                    var nextKept = new int[keepN];
                    for (int i = 0, j = 0, d = 0; i < kept.Length; i++)
                    {
                        var row = x.AsSpan(i * dim, dim);
                        if (i < keepMask.Length && !keepMask[i])
                        {
                            row.CopyTo(h.AsSpan(d * dim, dim));
                            pos[d++] = kept[i];
                            deferredAt[kept[i]] = l;
                            continue;
                        }
                        if (j != i) row.CopyTo(x.AsSpan(j * dim, dim));
                        nextKept[j++] = kept[i];
                    }
                    aux[l] = (pos, h);
                    kept = nextKept;
                }
            }
            session.ForwardBlock(l, x, kept, compact: true, lastQ.AsSpan(0, Math.Min(options.Window, kept.Length) * c.Heads * c.HeadDim));
        }
        session.SetPosition(n);
        var logits = session.Head(x.AsSpan((kept.Length - 1) * dim, dim));
        return new LazyPrefill(session, aux, kept.Length, n) { Logits = logits, DeferredAt = deferredAt };
    }

    /// <summary>Which of the first <paramref name="candidates"/> scores are among the top <paramref name="take"/> (ties to the
    /// lower index, as a stable descending order); a sort of indices, not of (score, index) pairs through LINQ.</summary>
    static bool[] KeepMask(float[] score, int candidates, int take)
    {
        var idx = new int[candidates];
        for (int i = 0; i < candidates; i++) idx[i] = i;
        Array.Sort(idx, (a, b) => score[b].CompareTo(score[a]) is var c && c != 0 ? c : a.CompareTo(b));
        var keep = new bool[candidates];
        for (int i = 0; i < take; i++) keep[idx[i]] = true;
        return keep;
    }

    /// <summary>The pruning layers of a schedule: round(fraction x layers), those in 1 .. layers-1; fractions outside (0, 1) are an error.</summary>
    public static HashSet<int> PruneLayers(LazyLlmOptions options, int layers)
    {
        foreach (double f in options.PruneAt)
            if (!(f > 0 && f < 1)) throw new PareException($"LazyLLM pruning layers (--prune-at) are fractions of the depth in (0, 1) (got {f})");
        return options.PruneAt.Select(f => (int)Math.Round(f * layers)).Where(l => l >= 1 && l < layers).ToHashSet();
    }

    /// <summary>Importance of the kept tokens at layer l: the softmax attention from each of the last m kept tokens (queries in
    /// <paramref name="windowQ"/>, m x heads x head_dim) over its causal prefix of kept tokens, averaged over the m queries per
    /// head (or the maximum over them), then the mean over heads (the paper's, m = 1) or the maximum; then max-pooled over
    /// <see cref="LazyLlmOptions.Pool"/> neighbours. Keys from the cache at layer l, or, given <paramref name="keys"/> (the kept
    /// tokens' keys at layer l, (n, kv_dim): <see cref="LazyLlmOptions.SameLayer"/>), from those.</summary>
    static float[] Importance(InferenceSession session, int l, int[] kept, ReadOnlySpan<float> windowQ, int m, LazyLlmOptions o, float[]? keys)
    {
        bool maxOverHeads = o.MaxOverHeads, maxOverWindow = o.MaxOverWindow;
        var c = session.Model.Config;
        int heads = c.HeadsAt(l), kvHeads = c.KvHeadsAt(l), hd = c.HeadDim, group = heads / kvHeads, n = kept.Length;
        int kvd = kvHeads * hd;
        var (k, v) = keys == null ? session.Cache.Read(l, kept[^1] + 1) : default;
        var view = new Pare.Models.Kv.KvView(k.Span, v.Span, session.ContextLength, heads, kvHeads, hd);
        var score = new float[n];
        var perHead = new float[n];
        var a = new float[n];
        float scale = 1f / MathF.Sqrt(hd);
        for (int h = 0; h < heads; h++)
        {
            Array.Clear(perHead);
            for (int w = 0; w < m; w++)
            {
                int len = n - m + w + 1;   // query w is kept token n - m + w: it sees the kept tokens up to itself
                var q = windowQ.Slice((w * heads + h) * hd, hd);
                float max = float.NegativeInfinity, sum = 0;
                for (int i = 0; i < len; i++)
                {
                    a[i] = (keys == null ? view.Dot(h / group, kept[i], q) : Pare.Kernels.Ops.Dot(q, keys.AsSpan(i * kvd + h / group * hd, hd))) * scale;
                    max = Math.Max(max, a[i]);
                }
                for (int i = 0; i < len; i++) { a[i] = MathF.Exp(a[i] - max); sum += a[i]; }
                if (maxOverWindow) for (int i = 0; i < len; i++) perHead[i] = Math.Max(perHead[i], a[i] / sum);
                else for (int i = 0; i < len; i++) perHead[i] += a[i] / sum / m;
            }
            for (int i = 0; i < n; i++) score[i] = maxOverHeads ? Math.Max(score[i], perHead[i]) : score[i] + perHead[i] / heads;
        }
        return o.Pool > 1 ? MaxPool(score, o.Pool / 2) : score;
    }

    /// <summary>Each score replaced by the maximum over its neighbours within <paramref name="r"/> (clipped at the ends).</summary>
    static float[] MaxPool(float[] score, int r)
    {
        var pooled = new float[score.Length];
        for (int i = 0; i < score.Length; i++)
        {
            float best = score[i];
            for (int j = Math.Max(0, i - r); j <= Math.Min(score.Length - 1, i + r); j++) best = Math.Max(best, score[j]);
            pooled[i] = best;
        }
        return pooled;
    }
}

/// <summary>The result of <see cref="LazyLlm.Prefill"/>: the first token's logits and the aux cache of deferred tokens.</summary>
public sealed class LazyPrefill
{
    readonly InferenceSession _s;
    readonly Dictionary<int, (int[] Pos, float[] H)> _aux;

    internal LazyPrefill(InferenceSession s, Dictionary<int, (int[] Pos, float[] H)> aux, int keptAtTop, int promptLength)
    {
        _s = s;
        _aux = aux;
        KeptAtLastLayer = keptAtTop;
        PromptLength = promptLength;
    }

    public float[] Logits { get; internal set; } = [];
    /// <summary>For each prompt position, the layer at which the prefill deferred it (the model's layer count = never).</summary>
    public IReadOnlyList<int> DeferredAt { get; internal set; } = [];
    /// <summary>Prompt tokens the last layer computed during prefill.</summary>
    public int KeptAtLastLayer { get; }
    public int PromptLength { get; }
    /// <summary>Deferred tokens still waiting in the aux cache.</summary>
    public int Deferred => _aux.Values.Sum(a => a.Pos.Length);

    /// <summary>
    /// Resumes every deferred token from its aux-cache hidden state, layer by layer (at layer l: the tokens deferred at or
    /// below l, attending to every position up to their own), so the cache holds every prompt token at every layer.
    /// </summary>
    public void Revive()
    {
        if (_aux.Count == 0) return;
        var c = _s.Model.Config;
        int dim = c.Dim;
        int[] pos = [];
        float[] x = [];
        for (int l = _aux.Keys.Min(); l < c.Layers; l++)
        {
            if (_aux.Remove(l, out var add))
            {
                var merged = pos.Select((p, i) => (p, src: x, i)).Concat(add.Pos.Select((p, i) => (p, src: add.H, i))).OrderBy(e => e.p).ToArray();
                var nx = new float[merged.Length * dim];
                for (int j = 0; j < merged.Length; j++) merged[j].src.AsSpan(merged[j].i * dim, dim).CopyTo(nx.AsSpan(j * dim, dim));
                pos = [.. merged.Select(e => e.p)];
                x = nx;
            }
            _s.ForwardBlock(l, x, pos, compact: false);
        }
    }
}
