using System.Runtime.InteropServices;
using Pare.Formats.Gguf;
using Pare.Kernels;
using Pare.Models;
using Pare.Tensors;
using Pare.Tokenizers;

namespace Pare.Training;

/// <summary>
/// Writes trained weights as a llama-architecture GGUF with the gpt2 tokenizer: the same metadata keys and tensor names as
/// <see cref="Pare.Models.SyntheticModel"/>, matrices in F32 or F16, norm weights in F32. No output.weight when tied.
/// </summary>
public static class GgufExport
{
    public static void Write(string path, ParameterStore p, TokenizerSpec tokenizer, string name, GgmlType type, string? trainingConfigJson = null)
    {
        if (type is not (GgmlType.F32 or GgmlType.F16)) throw new PareException($"export type {type} is not F32 or F16");
        var c = p.Config;
        if (tokenizer.Tokens.Length != c.VocabSize) throw new PareException($"tokenizer has {tokenizer.Tokens.Length} tokens, the model {c.VocabSize}");
        var w = new GgufWriter();
        LlamaGguf.WriteConfig(w, c, name, type);
        if (trainingConfigJson != null) w.Set("pare.training_config", trainingConfigJson);
        tokenizer.WriteTo(w);
        foreach (var info in p.All)
        {
            var values = p.Value(info).ToArray();
            if (info.Rows == 1) { w.AddTensor(info.Name, GgmlType.F32, [info.Cols], MemoryMarshal.AsBytes(values.AsSpan()).ToArray()); continue; }
            w.AddTensor(info.Name, type, [info.Cols, info.Rows], s =>
            {
                for (int r = 0; r < info.Rows; r++) s.Write(Quantizer.Quantize(type, values.AsSpan(r * info.Cols, info.Cols)));
            });
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        w.Write(path);
    }
}
