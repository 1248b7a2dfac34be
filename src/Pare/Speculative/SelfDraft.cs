using Pare.Models;

namespace Pare.Speculative;

/// <summary>
/// Self-drafting by layer skipping (Zhang et al., 2024, "Draft &amp; Verify"; Elhoushi et al., 2024, "LayerSkip"): the
/// target with some of its blocks skipped drafts for itself, so no second model is shipped. The draft model shares
/// the target's weights (same memory map, nothing copied): it keeps the first layers and the last one (the last block
/// shapes the residual stream for the output head) and the same embedding, final norm and head, and runs in its own
/// session with its own (smaller) KV cache.
/// </summary>
public static class SelfDraft
{
    /// <summary>The target with only <paramref name="layers"/> of its blocks: the first layers - 1 and the last.</summary>
    public static LlamaModel LayerSkipped(LlamaModel target, int layers)
    {
        int total = target.Config.Layers;
        if (layers < 1 || layers >= total) throw new PareException($"self-drafting keeps 1 to {total - 1} of the model's {total} layers (got {layers})");
        var kept = target.Weights.Layers.Take(layers - 1).Append(target.Weights.Layers[^1]).ToArray();
        return new LlamaModel(target.Config with { Layers = layers }, target.Weights with { Layers = kept }, target.Tokenizer, $"{target.Source} (self, {layers} of {total} layers)");
    }

    /// <summary>Default kept layers: half of the target's, at least one.</summary>
    public static int DefaultLayers(LlamaModel target) => Math.Max(1, target.Config.Layers / 2);
}
