using Pare.Models.Bert;

namespace Pare.Pruning.Tokens;

/// <summary>FoPru's two ways of choosing tokens from their significance.</summary>
public enum FoPruStrategy
{
    /// <summary>Keep the most significant tokens anywhere in the sentence (global view).</summary>
    Rank,
    /// <summary>Keep whole rows (runs of <see cref="FoPru.RowLength"/> consecutive tokens) with the highest mean
    /// significance, so kept information stays contiguous (local view); the last row taken may be partial.</summary>
    Row,
}

/// <summary>
/// FoPru (Focal Pruning). A token's significance is the attention it receives at the block, averaged over heads and
/// queries; the kept tokens stay in their original order. For text, the paper's image rows become runs of
/// <see cref="RowLength"/> consecutive tokens.
/// </summary>
public sealed class FoPru(TokenPruneOptions options, FoPruStrategy strategy) : TokenReducer(options)
{
    public FoPruStrategy Strategy { get; } = strategy;
    public override string Name => Strategy == FoPruStrategy.Rank ? "fopru-rank" : "fopru-row";

    /// <summary>Tokens per row of the row strategy.</summary>
    public const int RowLength = 4;

    protected override int[] Reduce(SentenceTokens s, int remove)
    {
        var sig = Received(s);
        var inner = Inner(s.Length);
        int budget = inner.Length - remove;
        var keep = new bool[s.Length];
        if (Strategy == FoPruStrategy.Rank)
            foreach (int t in inner.OrderByDescending(t => sig[t]).ThenBy(t => t).Take(budget)) keep[t] = true;
        else
        {
            var rows = inner.Chunk(RowLength).OrderByDescending(r => r.Average(t => sig[t])).ThenBy(r => r[0]);
            foreach (var row in rows)
            {
                if (budget == 0) break;
                foreach (int t in row.OrderByDescending(t => sig[t]).ThenBy(t => t).Take(budget)) { keep[t] = true; budget--; }
            }
        }
        return KeepOnly(keep);
    }
}
