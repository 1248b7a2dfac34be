using Pare.Formats.Onnx;

namespace Pare.Models.Bert;

/// <summary>
/// Maps the graph of a BERT encoder exported to ONNX (PyTorch's exporter, as in the sentence-transformers NuGet packages)
/// onto <see cref="BertTensors"/>. Embedding, LayerNorm and bias initializers keep their PyTorch names; the exporter
/// stores each linear weight as an unnamed MatMul initializer in [in, out] layout, so a weight is named after the
/// bias that the MatMul's output is added to (query.bias → query.weight) and transposed to [out, in].
/// Head count, LayerNorm epsilon and the activation are read from the graph (attention scale constant, the constant
/// added before the LayerNorm square root, an Erf node).
/// </summary>
public static class BertOnnxImport
{
    /// <summary>Reads an ONNX file; <see cref="InvalidModelException"/> (one line) when it is not a BERT encoder.</summary>
    public static (BertConfig Config, BertTensors Tensors) Import(string path)
    {
        var g = OnnxGraph.Load(path);
        return Import(g);
    }

    public static (BertConfig Config, BertTensors Tensors) Import(OnnxGraph g)
    {
        string where = g.Path;
        string? prefix = new[] { "", "bert." }.FirstOrDefault(p => g.HasInitializer(p + "embeddings.word_embeddings.weight"));
        if (prefix is null)
            throw new InvalidModelException($"{where}: not a BERT encoder (no 'embeddings.word_embeddings.weight' initializer)");

        var tensors = new BertTensors();
        // Named initializers: embeddings, LayerNorms, biases (and linear weights when the exporter kept their names).
        var linearByMatMul = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in g.Nodes)
            if (n.OpType == "MatMul" && n.Inputs.Length == 2 && g.HasInitializer(n.Inputs[1])) linearByMatMul.Add(n.Inputs[1]);
        foreach (string name in g.InitializerNames)
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string hf = name[prefix.Length..];
            if (!(hf.StartsWith("embeddings.", StringComparison.Ordinal) || hf.StartsWith("encoder.layer.", StringComparison.Ordinal))) continue;
            if (hf == "embeddings.position_ids") continue;
            var t = g.Float(name);
            if (linearByMatMul.Contains(name) && t.Dims.Length == 2) tensors.Add(hf, [t.Dims[1], t.Dims[0]], Transpose(t.Data, (int)t.Dims[0], (int)t.Dims[1]));
            else tensors.Add(hf, t.Dims, t.Data);
        }

        // Unnamed MatMul weights: named after the bias added to the product.
        foreach (var n in g.Nodes)
        {
            if (n.OpType != "MatMul" || n.Inputs.Length != 2 || !g.HasInitializer(n.Inputs[1])) continue;
            if (n.Inputs[1].StartsWith(prefix + "encoder.", StringComparison.Ordinal)) continue; // named, done above
            var dims = g.InitializerDims(n.Inputs[1])!;
            if (dims.Length != 2) continue;
            string? bias = g.Consumers(n.Outputs[0]).Where(c => c.OpType == "Add")
                .SelectMany(c => c.Inputs).FirstOrDefault(i => i.StartsWith(prefix, StringComparison.Ordinal) && i.EndsWith(".bias", StringComparison.Ordinal) && g.HasInitializer(i));
            if (bias is null) continue;
            string hf = bias[prefix.Length..^".bias".Length] + ".weight";
            if (!hf.StartsWith("encoder.layer.", StringComparison.Ordinal)) continue;
            var t = g.Float(n.Inputs[1]);
            tensors.Add(hf, [dims[1], dims[0]], Transpose(t.Data, (int)dims[0], (int)dims[1]));
        }

        var word = tensors.Shape("embeddings.word_embeddings.weight");
        if (word.Length != 2) throw new InvalidModelException($"{where}: word embeddings are not a matrix");
        int dim = (int)word[1];
        int layers = 0;
        while (tensors.Has($"encoder.layer.{layers}.attention.self.query.bias")) layers++;
        if (layers == 0) throw new InvalidModelException($"{where}: not a BERT encoder (no 'encoder.layer.0.attention.self.query.bias')");
        if (!tensors.Has("encoder.layer.0.attention.self.query.weight"))
            throw new InvalidModelException($"{where}: could not find the query projection of layer 0 (no MatMul feeding the add of its bias)");
        if (!g.Nodes.Any(n => n.OpType == "Erf"))
            throw new InvalidModelException($"{where}: no Erf node: only BERT with exact (erf) GELU is supported");

        int headDim = FindHeadDim(g);
        if (headDim <= 0 || dim % headDim != 0) throw new InvalidModelException($"{where}: attention head size {headDim} does not divide hidden size {dim}");
        var config = new BertConfig
        {
            VocabSize = (int)word[0],
            Dim = dim,
            Layers = layers,
            Heads = dim / headDim,
            FfnDim = (int)tensors.Shape("encoder.layer.0.intermediate.dense.bias")[0],
            MaxPositions = (int)tensors.Shape("embeddings.position_embeddings.weight")[0],
            TypeVocabSize = tensors.Has("embeddings.token_type_embeddings.weight") ? (int)tensors.Shape("embeddings.token_type_embeddings.weight")[0] : 0,
            LayerNormEps = FindLayerNormEps(g) ?? 1e-12f,
        };
        config.Validate(where);
        tensors.Validate(config, where);
        return (config, tensors);
    }

    /// <summary>src [rows, cols] → [cols, rows].</summary>
    public static float[] Transpose(float[] src, int rows, int cols)
    {
        var dst = new float[src.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) dst[(long)c * rows + r] = src[(long)r * cols + c];
        return dst;
    }

    /// <summary>
    /// Head size from the attention scale: scores = Q·Kᵀ / √d (a Div by √d or a Mul by 1/√d just before the mask add
    /// and the Softmax).
    /// </summary>
    static int FindHeadDim(OnnxGraph g)
    {
        var softmax = g.Nodes.FirstOrDefault(n => n.OpType == "Softmax") ?? throw new InvalidModelException($"{g.Path}: no Softmax node: not a BERT encoder");
        // Walk back a few producers from the Softmax input looking for the scale.
        var frontier = new Queue<(string Value, int Depth)>();
        frontier.Enqueue((softmax.Inputs[0], 0));
        while (frontier.Count > 0)
        {
            var (v, depth) = frontier.Dequeue();
            var p = g.Producer(v);
            if (p is null || depth > 4) continue;
            if (p.OpType is "Div" or "Mul" && p.Inputs.Length == 2)
            {
                foreach (int k in new[] { 1, 0 })
                    if (g.Constant(p.Inputs[k]) is [double c] && c > 0)
                    {
                        double d = p.OpType == "Div" ? c * c : 1 / (c * c);
                        int hd = (int)Math.Round(d);
                        if (hd >= 1 && Math.Abs(d - hd) < 1e-3 * hd) return hd;
                    }
            }
            foreach (var i in p.Inputs) frontier.Enqueue((i, depth + 1));
        }
        throw new InvalidModelException($"{g.Path}: could not find the attention scale (1/sqrt(head size)) before the Softmax");
    }

    /// <summary>Epsilon of the first LayerNorm: the constant added to the variance (ReduceMean) before Sqrt.</summary>
    static float? FindLayerNormEps(OnnxGraph g)
    {
        foreach (var n in g.Nodes)
        {
            if (n.OpType != "Sqrt") continue;
            var add = g.Producer(n.Inputs[0]);
            if (add is null || add.OpType != "Add") continue;
            foreach (var i in add.Inputs)
                if (g.Constant(i) is [double eps] && eps > 0 && eps < 1) return (float)eps;
        }
        return null;
    }
}
