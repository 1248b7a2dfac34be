using Pare.Models;
using Pare.Training;

namespace Pare.Pruning;

/// <summary>
/// GBLM-Pruner: "Beyond Size: How Gradients Shape Pruning Decisions in Large Language Models" (Das, Ma, Shen 2023,
/// https://arxiv.org/abs/2311.04902; reference code VILA-Lab/GBLM-Pruner). Unstructured and N:M, no weight update.
/// <list type="bullet">
/// <item>Gradients of the language-model loss of the DENSE model, one calibration window at a time (the loss of a
/// window is its mean next-token cross-entropy, as a Hugging Face model with labels computes it), through the trainer's
/// backward pass (<see cref="TrainingModel"/>). Per weight G_ij = sqrt(Σ_samples (scale · g_ij)²): the l2 norm over
/// samples, with the reference code's scale 100.</item>
/// <item>Score S_ij = |W_ij| · ||X_j|| + |W_ij| · G_ij, with ||X_j||² = Σ over the calibration tokens of x_j² divided by
/// the number of windows (the reference code's <c>scaler_row</c>, shared with Wanda), then Wanda's per-row selection.</item>
/// </list>
/// The scale matters: the two terms are added, so it sets how much the gradient term weighs against Wanda's.
/// </summary>
public static class Gblm
{
    /// <summary>The reference code's gradient scale (the gradients are multiplied by 100 before squaring).</summary>
    public const float DefaultGradScale = 100f;

    /// <summary>
    /// G = sqrt(Σ_s (scale · ∂L_s/∂W)²) for every block matrix (q, k, v, o, gate, up, down), keyed by GGUF tensor name,
    /// row-major (out, in). L_s = mean cross-entropy of window s predicting its tokens 1..T-1 from the preceding ones.
    /// The model must be a uniform Llama with F32/F16/BF16 weights (what the trainer reads).
    /// </summary>
    public static Dictionary<string, float[]> Gradients(LlamaConfig config, string modelPath, IReadOnlyList<int[]> windows, float scale, int threads,
        CancellationToken cancel = default, IProgress<double>? progress = null)
    {
        if (windows.Count == 0) throw new PareException("GBLM needs calibration windows");
        int T = windows[0].Length - 1;
        if (T < 1) throw new PareException("GBLM needs calibration windows of at least 2 tokens");
        var store = new ParameterStore(config);
        try { store.LoadGguf(modelPath); }
        catch (PareException e) { throw new PareException($"GBLM computes gradients with the trainer, which cannot read this model: {e.Message}"); }
        return Gradients(store, windows, scale, threads, cancel, progress);
    }

    /// <summary><see cref="Gradients(LlamaConfig, string, IReadOnlyList{int[]}, float, int, CancellationToken, IProgress{double}?)"/> on weights already loaded.</summary>
    public static Dictionary<string, float[]> Gradients(ParameterStore store, IReadOnlyList<int[]> windows, float scale, int threads,
        CancellationToken cancel = default, IProgress<double>? progress = null)
    {
        int T = windows[0].Length - 1;
        var model = new TrainingModel(store, 1, T, threads);
        var mats = store.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down }).ToArray();
        var sq = mats.ToDictionary(m => m.Name, m => new double[m.Length]);
        var inputs = new int[T];
        var targets = new int[T];
        for (int s = 0; s < windows.Count; s++)
        {
            cancel.ThrowIfCancellationRequested();
            var win = windows[s];
            if (win.Length != T + 1) throw new PareException("calibration windows must all have the same length");
            win.AsSpan(0, T).CopyTo(inputs);
            win.AsSpan(1, T).CopyTo(targets);
            store.ZeroGrads();
            model.Step(inputs, targets, 1f / T);
            foreach (var m in mats)
            {
                var g = store.Grad(m);
                var acc = sq[m.Name];
                for (int i = 0; i < acc.Length; i++) { double v = (double)scale * g[i]; acc[i] += v * v; }
            }
            progress?.Report((s + 1.0) / windows.Count);
        }
        return sq.ToDictionary(kv => kv.Key, kv =>
        {
            var r = new float[kv.Value.Length];
            for (int i = 0; i < r.Length; i++) r[i] = (float)Math.Sqrt(kv.Value[i]);
            return r;
        });
    }

    /// <summary>The GBLM score of one weight: |w| · xNorm + |w| · g.</summary>
    public static float Score(float w, float xNorm, float g) => MathF.Abs(w) * xNorm + MathF.Abs(w) * g;

    /// <summary>
    /// Prunes <paramref name="w"/> (rows x cols) in place by S = |W| · ||X|| + |W| · G, per output row (unstructured: the
    /// lowest fraction; N:M: the N best of every M). <paramref name="inputSqNorm"/>[j] = ||X_j||² as the reference scales it
    /// (Σ over calibration tokens of x_j² / number of windows); <paramref name="gradNorm"/> = G, same layout as W.
    /// </summary>
    public static void Prune(Span<float> w, int rows, int cols, ReadOnlySpan<double> inputSqNorm, ReadOnlySpan<float> gradNorm, SparsityPattern pattern, Span<bool> pruned)
    {
        if (inputSqNorm.Length != cols) throw new ArgumentException($"{inputSqNorm.Length} input norms for {cols} columns", nameof(inputSqNorm));
        if (gradNorm.Length != (long)rows * cols) throw new ArgumentException($"{gradNorm.Length} gradient norms for {rows}x{cols} weights", nameof(gradNorm));
        var norm = Wanda.ColumnNorms(inputSqNorm);
        var grads = gradNorm.ToArray(); // the scorer is a lambda: it cannot capture a span
        Masks.PruneRows(w, rows, cols, pattern, pruned, (r, row, score) =>
        {
            for (int j = 0; j < cols; j++) score[j] = Score(row[j], norm[j], grads[r * cols + j]);
        });
    }
}
