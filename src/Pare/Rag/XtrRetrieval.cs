namespace Pare.Rag;

/// <summary>Options of <see cref="XtrRetrieval"/>.</summary>
public sealed record XtrOptions
{
    /// <summary>Document tokens retrieved per query token (k′ of the paper). Default 100.</summary>
    public int TokensPerQueryToken { get; init; } = 100;
}

/// <summary>
/// XTR-style late interaction (Lee et al. 2023): every document token's final state (unit length, [CLS]/[SEP] left out)
/// is indexed; each query token retrieves its k′ nearest document tokens, and a document is scored with the retrieved
/// tokens only: per query token the best retrieved similarity from that document, or, when none of its tokens was
/// retrieved, the imputed k′-th similarity of that query token; averaged over query tokens. (The encoder here was not
/// trained with XTR's objective: it is all-MiniLM-L6-v2 as it is.)
/// </summary>
public sealed class XtrRetrieval
{
    readonly float[] _tokens;        // (T, D) unit rows
    readonly int[] _doc;             // document of each token row
    readonly int _dim, _docs;
    public XtrOptions Options { get; }

    public XtrRetrieval(Embedder e, IReadOnlyList<string> documents, XtrOptions? options = null, CancellationToken ct = default)
    {
        Options = options ?? new();
        _dim = e.Dim; _docs = documents.Count;
        var rows = new List<float>(); var doc = new List<int>();
        for (int start = 0; start < documents.Count; start += 16)
        {
            var batch = documents.Skip(start).Take(16).ToList();
            var h = e.Hidden(batch, ct);
            for (int s = 0; s < batch.Count; s++)
                for (int t = 1; t < h.Length(s) - 1; t++)
                {
                    var v = h.Row(s, t).ToArray();
                    Models.Bert.SentencePooling.L2Normalize(v);
                    rows.AddRange(v); doc.Add(start + s);
                }
        }
        _tokens = [.. rows]; _doc = [.. doc];
    }

    public int TokenCount => _doc.Length;
    /// <summary>Bytes of the token index as float32 (vectors) plus int32 document ids.</summary>
    public long IndexBytes => (long)_tokens.Length * 4 + (long)_doc.Length * 4;

    /// <summary>Document indices by decreasing score.</summary>
    public int[] Search(Embedder e, string query, CancellationToken ct = default)
    {
        var h = e.Hidden([query], ct);
        int qn = h.Length(0) - 2, k = Math.Min(Options.TokensPerQueryToken, TokenCount);
        var total = new double[_docs];
        var sims = new float[TokenCount];
        for (int t = 1; t <= qn; t++)
        {
            var q = h.Row(0, t).ToArray();
            Models.Bert.SentencePooling.L2Normalize(q);
            for (int i = 0; i < sims.Length; i++) sims[i] = Embedder.Dot(q, _tokens.AsSpan(i * _dim, _dim));
            var top = Enumerable.Range(0, sims.Length).OrderByDescending(i => sims[i]).Take(k).ToArray();
            double imputed = sims[top[^1]];
            var best = new double[_docs];
            Array.Fill(best, imputed);
            foreach (int i in top) if (sims[i] > best[_doc[i]]) best[_doc[i]] = sims[i];
            for (int d = 0; d < _docs; d++) total[d] += best[d];
        }
        return [.. Enumerable.Range(0, _docs).OrderByDescending(d => total[d]).ThenBy(d => d)];
    }
}
