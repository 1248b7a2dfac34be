using Pare.Models.Bert;

namespace Pare.Pruning.Tokens;

/// <summary>
/// Token-level correlation-guided compression (after the document-understanding paper of that name), for text: a token's
/// informativeness is the attention [CLS] pays it (the [CLS]-to-token correlation), and repetition is the key cosine
/// between tokens. Tokens are taken by informativeness, skipping any whose key is within <see cref="Repeat"/> cosine of
/// one already taken; if that leaves the budget unfilled, the skipped ones fill it in informativeness order. Left out:
/// the paper's adaptive budget from information density (here the keep fraction fixes the count).
/// </summary>
public sealed class CorrelationGuided(TokenPruneOptions options) : TokenReducer(options)
{
    public override string Name => "correlation";

    /// <summary>Key cosine above which a token counts as a repeat of one already kept.</summary>
    public const double Repeat = 0.9;

    protected override int[] Reduce(SentenceTokens s, int remove)
    {
        var inner = Inner(s.Length);
        int budget = inner.Length - remove;
        var order = inner.OrderByDescending(t => s.Attention[t]).ThenBy(t => t).ToArray();   // row 0: [CLS]'s attention
        var keep = new bool[s.Length];
        var taken = new List<int>();
        var skipped = new List<int>();
        foreach (int t in order)
        {
            if (taken.Count == budget) break;
            if (taken.Any(u => Cosine(s.Key(t), s.Key(u)) > Repeat)) skipped.Add(t);
            else { taken.Add(t); keep[t] = true; }
        }
        foreach (int t in skipped.Concat(order.Where(t => !keep[t] && !skipped.Contains(t))))
        {
            if (taken.Count == budget) break;
            taken.Add(t); keep[t] = true;
        }
        return KeepOnly(keep);
    }
}
