using Pare.Kernels;
using Pare.Models.Kv;

namespace Pare.Models;

/// <summary>
/// Position re-numbering for KV policies that ask for it (<see cref="IKvPolicy.Renumber"/>, TokenSelect): the reference
/// keeps keys pre-RoPE and rotates the gathered sequence by rank (selected prefix keys at 0..G-1, the query's own chunk
/// after them). The cache holds keys rotated at their true positions; since a RoPE score depends only on the distance
/// between query and key, rotating selected key i once more by Δ = (Position − G + i) − p_i (its true position p_i ≤
/// Position − G + i, so Δ ≥ 0) gives exactly the reference's distances (G + t − i for the query at Position + t), while
/// the own chunk and the query keep their rotations. Slow reference: Pare.LongContext.RenumberedDecodeReference (test).
/// </summary>
public sealed partial class InferenceSession
{
    // cos / sin of every rotation by Δ = 0..ContextLength-1 positions (ContextLength x RopeDim/2), built on first use.
    float[] _deltaCos = [], _deltaSin = [];
    // The gathered sequence of one token: K blocked and V position-major, laid out for ContextLength positions (the
    // first G + own are used), reused for every token and layer.
    float[] _gatherK = [], _gatherV = [];
    // With the policy's position-major K rows (IKvPolicy.KeyRows): the selected keys gathered as rows (ranks 0..G-1).
    float[] _gatherRows = [];
    // 0, 1, 2, ...: the gathered sequence's ranks (the selection is ranks 0..G-1, the own chunk G..G+own-1), grown as needed.
    int[] _ranks = [];

    /// <summary>One token's heads over its renumbered selection: the selected prefix positions (the same for every head) are
    /// gathered into a scratch cache, re-rotated by Δ, followed by the own chunk unchanged; then the selected-positions kernel.</summary>
    void AttendRenumbered(ReadOnlySpan<float> q, in KvView view, int[][] prefix, int[] counts, ReadOnlySpan<int> own, Span<float> att, ReadOnlySpan<float> keyRows)
    {
        int heads = view.Heads, kvHeads = view.KvHeads, hd = view.HeadDim, kvd = kvHeads * hd, half = _c.RopeDim / 2;
        int[] sel = prefix[0];
        int g = counts[0];
        for (int h = 1; h < heads; h++)
            if (counts[h] != g || (!ReferenceEquals(prefix[h], sel) && !prefix[h].AsSpan(0, g).SequenceEqual(sel.AsSpan(0, g))))
                throw new InvalidOperationException("position re-numbering needs one selection for every head of a layer");
        if (g == 0 || sel[0] == Position - g)
        {
            // Nothing selected, or the last g positions: every Δ is 0 (a prefill chunk's tokens, a window), no gathering needed.
            if (!keyRows.IsEmpty && g > 0) RowsAttention.AttendShared(q, heads, kvHeads, hd, keyRows, view.K, ContextLength, view.V, sel.AsSpan(0, g), own, att, _threads);
            else SelectedAttention.AttendHeads(q, heads, kvHeads, hd, view.K, ContextLength, view.V, prefix, counts, own, att, _threads);
            return;
        }
        EnsureDeltaAngles();
        int cap = g + own.Length, layout = ContextLength;   // cap <= ContextLength: own positions are distinct from the selection's
        if (_gatherK.Length < BlockedAttention.CacheFloats(layout, kvHeads, hd)) _gatherK = new float[BlockedAttention.CacheFloats(layout, kvHeads, hd)];
        if (_gatherV.Length < layout * kvd) _gatherV = new float[layout * kvd];
        bool rows = !keyRows.IsEmpty;
        if (rows && _gatherRows.Length < layout * kvd) _gatherRows = new float[layout * kvd];
        var k = _gatherK;
        var v = _gatherV;
        Span<float> row = stackalloc float[kvd];
        for (int i = 0; i < cap; i++)
        {
            int p = i < g ? sel[i] : own[i - g];
            int delta = i < g ? Position - g + i - p : 0;
            view.V.Slice(p * kvd, kvd).CopyTo(v.AsSpan(i * kvd, kvd));
            if (rows && i < g)
            {
                // A selected key from the policy's position-major rows: one contiguous row, rotated in place at rank i.
                var r = _gatherRows.AsSpan(i * kvd, kvd);
                keyRows.Slice(p * kvd, kvd).CopyTo(r);
                if (delta != 0) Ops.Rope(r, kvHeads, hd, _deltaCos.AsSpan(delta * half, half), _deltaSin.AsSpan(delta * half, half), _c.RopeLayout);
                continue;
            }
            for (int h = 0; h < kvHeads; h++)
            {
                long at = BlockedAttention.Index(ContextLength, hd, h, p, 0);   // K(h, p, d) at at + d x Block
                for (int d = 0; d < hd; d++) row[h * hd + d] = view.K[(int)(at + d * BlockedAttention.Block)];
            }
            if (delta != 0)
                Ops.Rope(row, kvHeads, hd, _deltaCos.AsSpan(delta * half, half), _deltaSin.AsSpan(delta * half, half), _c.RopeLayout);
            for (int h = 0; h < kvHeads; h++)
            {
                long at = BlockedAttention.Index(layout, hd, h, i, 0);
                for (int d = 0; d < hd; d++) k[at + d * BlockedAttention.Block] = row[h * hd + d];
            }
        }
        if (_ranks.Length < cap) _ranks = System.Linq.Enumerable.Range(0, layout).ToArray();
        // Every head reads the same gathered ranks with the count checked equal above; the caller refills prefix for each token.
        Array.Fill(prefix, _ranks);
        if (rows) RowsAttention.AttendShared(q, heads, kvHeads, hd, _gatherRows, k, layout, v, _ranks.AsSpan(0, g), _ranks.AsSpan(g, own.Length), att, _threads);
        else SelectedAttention.AttendHeads(q, heads, kvHeads, hd, k, layout, v, prefix, counts, _ranks.AsSpan(g, own.Length), att, _threads);
    }

    void EnsureDeltaAngles()
    {
        int half = _c.RopeDim / 2;
        if (_deltaCos.Length == ContextLength * half) return;
        _deltaCos = new float[ContextLength * half];
        _deltaSin = new float[ContextLength * half];
        for (int d = 0; d < ContextLength; d++)
            Ops.RopeAngles(d, _c.RopeDim, _c.RopeBase, _deltaCos.AsSpan(d * half, half), _deltaSin.AsSpan(d * half, half));
    }
}
