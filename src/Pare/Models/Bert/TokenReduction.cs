namespace Pare.Models.Bert;

/// <summary>
/// What a token reducer sees of one sentence at a reducing block, after that block's attention and before its
/// feed-forward: the head-averaged attention probabilities and the keys of the block, and each token's size (how many
/// input tokens it stands for after earlier merges; 1 when nothing was merged).
/// </summary>
/// <param name="Layer">Block index (0-based).</param>
/// <param name="Length">Tokens of the sentence now.</param>
/// <param name="OriginalLength">Tokens the sentence had at the embedding layer.</param>
/// <param name="Attention">(Length, Length), row i = where query i attends, mean over heads; rows sum to 1.</param>
/// <param name="Keys">(Length, Dim), the block's key vectors (heads side by side).</param>
/// <param name="Sizes">(Length), input tokens each token stands for.</param>
public sealed record SentenceTokens(int Layer, int Length, int OriginalLength, float[] Attention, float[] Keys, int Dim, float[] Sizes)
{
    public ReadOnlySpan<float> Key(int t) => Keys.AsSpan(t * Dim, Dim);
}

/// <summary>
/// Token pruning or merging inside the encoder. At each block where <see cref="ReducesAt"/> holds, the encoder asks for
/// an assignment of each token to an output slot (or -1 to drop it) per sentence, so packed sentences never mix; tokens
/// sharing a slot are merged as the size-weighted mean of their states. The first token ([CLS]) must stay alone in
/// slot 0 and the last ([SEP]) alone in the last slot; slots are numbered in order of their first token.
/// </summary>
public interface ITokenReducer
{
    /// <summary>Whether tokens are reduced after the attention of block <paramref name="layer"/>.</summary>
    bool ReducesAt(int layer);

    /// <summary>Slot of each token of the sentence (-1: dropped).</summary>
    int[] Assign(SentenceTokens sentence);
}

/// <summary>Rows each block processed in a forward pass (attention input, feed-forward input): the FLOPs record.</summary>
public sealed class TokenTrace
{
    public List<(int Attention, int FeedForward, long AttentionPairs)> Layers { get; } = [];

    /// <summary>Multiply-adds ×2 of the blocks (linear layers and attention scores/values; LayerNorm, softmax, GELU left out).</summary>
    public static double Flops(BertConfig c, int attentionRows, int ffnRows, long attentionPairs) =>
        2.0 * attentionRows * (4.0 * c.Dim * c.Dim) + 2.0 * ffnRows * (2.0 * c.Dim * c.FfnDim) + 2.0 * 2.0 * attentionPairs * c.Dim;

    public double TotalFlops(BertConfig c) => Layers.Sum(l => Flops(c, l.Attention, l.FeedForward, l.AttentionPairs));
}
