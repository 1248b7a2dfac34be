using System.Runtime.InteropServices;
using Pare.Tensors;

namespace Pare.Models.Bert;

/// <summary>One encoder block's weights: linear layers as F32 <see cref="WeightMatrix"/> [out, in], vectors as arrays.</summary>
public sealed record BertLayerWeights(
    WeightMatrix Wq, float[] Bq, WeightMatrix Wk, float[] Bk, WeightMatrix Wv, float[] Bv,
    WeightMatrix Wo, float[] Bo, float[] AttnNormW, float[] AttnNormB,
    WeightMatrix Up, float[] BUp, WeightMatrix Down, float[] BDown, float[] OutNormW, float[] OutNormB);

/// <summary>
/// The weights the forward pass reads, built from <see cref="BertTensors"/>: matrices live in pinned F32 arrays so the
/// decoder engine's kernels (<see cref="Kernels.MatMul"/>) multiply them in place.
/// </summary>
public sealed class BertWeights
{
    readonly List<float[]> _pinned = []; // keeps the matrices' memory alive

    public float[] WordEmbeddings { get; }
    public float[] PositionEmbeddings { get; }
    public float[] TokenTypeEmbeddings { get; }
    public float[] EmbNormW { get; }
    public float[] EmbNormB { get; }
    public IReadOnlyList<BertLayerWeights> Layers { get; }

    public BertWeights(BertConfig c, BertTensors t)
    {
        t.Validate(c, "BERT weights");
        WordEmbeddings = t.Get("embeddings.word_embeddings.weight");
        PositionEmbeddings = t.Get("embeddings.position_embeddings.weight");
        TokenTypeEmbeddings = t.Get("embeddings.token_type_embeddings.weight");
        EmbNormW = t.Get("embeddings.LayerNorm.weight");
        EmbNormB = t.Get("embeddings.LayerNorm.bias");
        var layers = new List<BertLayerWeights>();
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"encoder.layer.{i}.";
            layers.Add(new BertLayerWeights(
                Matrix(t, p + "attention.self.query.weight"), t.Get(p + "attention.self.query.bias"),
                Matrix(t, p + "attention.self.key.weight"), t.Get(p + "attention.self.key.bias"),
                Matrix(t, p + "attention.self.value.weight"), t.Get(p + "attention.self.value.bias"),
                Matrix(t, p + "attention.output.dense.weight"), t.Get(p + "attention.output.dense.bias"),
                t.Get(p + "attention.output.LayerNorm.weight"), t.Get(p + "attention.output.LayerNorm.bias"),
                Matrix(t, p + "intermediate.dense.weight"), t.Get(p + "intermediate.dense.bias"),
                Matrix(t, p + "output.dense.weight"), t.Get(p + "output.dense.bias"),
                t.Get(p + "output.LayerNorm.weight"), t.Get(p + "output.LayerNorm.bias")));
        }
        Layers = layers;
    }

    WeightMatrix Matrix(BertTensors t, string name)
    {
        var shape = t.Shape(name);
        var src = t.Get(name);
        var pinned = GC.AllocateUninitializedArray<float>(src.Length, pinned: true);
        src.CopyTo(pinned, 0);
        _pinned.Add(pinned);
        return new WeightMatrix(name, GgmlType.F32, (int)shape[0], (int)shape[1], Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0), (long)pinned.Length * 4);
    }
}
