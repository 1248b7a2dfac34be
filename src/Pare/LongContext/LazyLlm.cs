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
        if (!(options.Keep > 0 && options.Keep <= 1)) throw new PareException($"--keep must be in (0, 1] (got {options.Keep})");
        var c = session.Model.Config;
        if (c.Sliced) throw new PareException("LazyLLM does not support SliceGPT models");
        int n = prompt.Length, dim = c.Dim, layers = c.Layers;
        if (n == 0) throw new PareException("no tokens to evaluate");
        if (n > session.ContextLength) throw new PareException($"context is full: {n} tokens exceed the context length {session.ContextLength}");
        session.Reset();
        var pruneLayers = PruneLayers(options, layers);
        var deferredAt = Enumerable.Repeat(layers, n).ToArray();
        var x = session.Embed(prompt);
        int[] kept = [.. Enumerable.Range(0, n)];
        var aux = new Dictionary<int, (int[] Pos, float[] H)>();
        var lastQ = new float[c.Heads * c.HeadDim];
        for (int l = 0; l < layers; l++)
        {
            if (pruneLayers.Contains(l) && options.Keep < 1 && kept.Length > 1)
            {
                var score = Importance(session, l - 1, kept, lastQ);
                int keepN = Math.Max(1, (int)Math.Ceiling(kept.Length * options.Keep));
                var order = Enumerable.Range(0, kept.Length - 1).OrderByDescending(i => score[i]).ThenBy(i => i).Take(keepN - 1).Append(kept.Length - 1).Order().ToArray();
                var keepSet = new HashSet<int>(order);
                var deferred = Enumerable.Range(0, kept.Length).Where(i => !keepSet.Contains(i)).ToArray();
                if (deferred.Length > 0)
                {
                    var h = new float[deferred.Length * dim];
                    for (int j = 0; j < deferred.Length; j++) x.AsSpan(deferred[j] * dim, dim).CopyTo(h.AsSpan(j * dim, dim));
                    aux[l] = ([.. deferred.Select(i => kept[i])], h);
                    foreach (int i in deferred) deferredAt[kept[i]] = l;
                    var nx = new float[order.Length * dim];
                    for (int j = 0; j < order.Length; j++) x.AsSpan(order[j] * dim, dim).CopyTo(nx.AsSpan(j * dim, dim));
                    x = nx;
                    kept = [.. order.Select(i => kept[i])];
                }
            }
            session.ForwardBlock(l, x, kept, compact: true, lastQ);
        }
        session.SetPosition(n);
        var logits = session.Head(x.AsSpan((kept.Length - 1) * dim, dim));
        return new LazyPrefill(session, aux, kept.Length, n) { Logits = logits, DeferredAt = deferredAt };
    }

    /// <summary>The pruning layers of a schedule: round(fraction x layers), those in 1 .. layers-1; fractions outside (0, 1) are an error.</summary>
    public static HashSet<int> PruneLayers(LazyLlmOptions options, int layers)
    {
        foreach (double f in options.PruneAt)
            if (!(f > 0 && f < 1)) throw new PareException($"LazyLLM pruning layers (--prune-at) are fractions of the depth in (0, 1) (got {f})");
        return options.PruneAt.Select(f => (int)Math.Round(f * layers)).Where(l => l >= 1 && l < layers).ToHashSet();
    }

    /// <summary>Attention of the last kept token over the kept tokens at layer l, averaged over heads.</summary>
    static float[] Importance(InferenceSession session, int l, int[] kept, float[] lastQ)
    {
        var c = session.Model.Config;
        int heads = c.HeadsAt(l), kvHeads = c.KvHeadsAt(l), hd = c.HeadDim, group = heads / kvHeads;
        var (k, v) = session.Cache.Read(l, kept[^1] + 1);
        var view = new Pare.Models.Kv.KvView(k.Span, v.Span, session.ContextLength, heads, kvHeads, hd);
        var score = new float[kept.Length];
        var a = new float[kept.Length];
        float scale = 1f / MathF.Sqrt(hd);
        for (int h = 0; h < heads; h++)
        {
            float max = float.NegativeInfinity, sum = 0;
            for (int i = 0; i < kept.Length; i++) { a[i] = view.Dot(h / group, kept[i], lastQ.AsSpan(h * hd, hd)) * scale; max = Math.Max(max, a[i]); }
            for (int i = 0; i < kept.Length; i++) { a[i] = MathF.Exp(a[i] - max); sum += a[i]; }
            for (int i = 0; i < kept.Length; i++) score[i] += a[i] / sum / heads;
        }
        return score;
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
