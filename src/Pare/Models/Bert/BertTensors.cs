namespace Pare.Models.Bert;

/// <summary>
/// The weights of a BERT encoder as F32 arrays under Hugging Face <c>BertModel</c> names (no "bert." prefix),
/// linear weights in PyTorch layout [out, in]. Importers fill it, exporters and <see cref="BertWeights"/> read it.
/// </summary>
public sealed class BertTensors
{
    readonly Dictionary<string, (long[] Shape, float[] Data)> _t = new(StringComparer.Ordinal);

    public IEnumerable<string> Names => _t.Keys;

    public void Add(string name, long[] shape, float[] data)
    {
        if (shape.Aggregate(1L, (a, b) => a * b) != data.Length) throw new ArgumentException($"tensor '{name}': {data.Length} values for shape [{string.Join(",", shape)}]");
        _t[name] = (shape, data);
    }

    public bool Has(string name) => _t.ContainsKey(name);

    public float[] Get(string name) => _t.TryGetValue(name, out var t) ? t.Data : throw new InvalidModelException($"missing tensor '{name}'");

    public long[] Shape(string name) => _t.TryGetValue(name, out var t) ? t.Shape : throw new InvalidModelException($"missing tensor '{name}'");

    /// <summary>The HF names and shapes a <see cref="BertConfig"/> needs, in checkpoint order.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Expected(BertConfig c)
    {
        yield return ("embeddings.word_embeddings.weight", [c.VocabSize, c.Dim]);
        yield return ("embeddings.position_embeddings.weight", [c.MaxPositions, c.Dim]);
        yield return ("embeddings.token_type_embeddings.weight", [c.TypeVocabSize, c.Dim]);
        yield return ("embeddings.LayerNorm.weight", [c.Dim]);
        yield return ("embeddings.LayerNorm.bias", [c.Dim]);
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"encoder.layer.{i}.";
            foreach (var n in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" })
            {
                yield return (p + n + ".weight", [c.Dim, c.Dim]);
                yield return (p + n + ".bias", [c.Dim]);
            }
            yield return (p + "attention.output.LayerNorm.weight", [c.Dim]);
            yield return (p + "attention.output.LayerNorm.bias", [c.Dim]);
            yield return (p + "intermediate.dense.weight", [c.FfnDim, c.Dim]);
            yield return (p + "intermediate.dense.bias", [c.FfnDim]);
            yield return (p + "output.dense.weight", [c.Dim, c.FfnDim]);
            yield return (p + "output.dense.bias", [c.Dim]);
            yield return (p + "output.LayerNorm.weight", [c.Dim]);
            yield return (p + "output.LayerNorm.bias", [c.Dim]);
        }
    }

    /// <summary>Checks that every tensor the config needs is present with its shape.</summary>
    public void Validate(BertConfig c, string where)
    {
        foreach (var (name, shape) in Expected(c))
        {
            if (!_t.TryGetValue(name, out var t)) throw new InvalidModelException($"{where}: missing tensor '{name}'");
            if (!t.Shape.SequenceEqual(shape))
                throw new InvalidModelException($"{where}: tensor '{name}' has shape [{string.Join(",", t.Shape)}], expected [{string.Join(",", shape)}]");
        }
    }
}
