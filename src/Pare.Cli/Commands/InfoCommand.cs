using System.CommandLine;
using Pare.Pruning;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary><c>pare info MODEL</c>: architecture, shapes, tensor types and parameter count.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var json = Cli.Json();
        var tensors = new Option<bool>("--tensors") { Description = "List every tensor with its shape and type." };
        var cmd = new Command("info", "Show a model's architecture, shapes, tensor types and parameter count.") { model, json, tensors };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            using var m = Cli.Load(r.GetValue(model)!);
            var c = m.Config;
            var types = new SortedDictionary<string, long>();
            var tensorList = new List<TensorRow>();
            if (m.Gguf is { } g)
                foreach (var t in g.Tensors)
                {
                    // A matrix in Pare's compact format is stored as a 1-D I8 blob: report the matrix it holds, not the blob.
                    var (type, dims) = CompactFormat.Matrix(g, t) is { } cm
                        ? ($"{cm.ValueType} compact", new long[] { cm.Cols, cm.Rows })
                        : CompactFormat.RowGroupMatrix(g, t) is { } rg ? ($"{rg.ValueType} compact row groups", new long[] { rg.Cols, rg.Rows })
                        : (t.Type.ToString(), t.Dims);
                    types[type] = types.GetValueOrDefault(type) + dims.Aggregate(1L, (a, b) => a * b);
                    tensorList.Add(new TensorRow(t.Name, dims, type, t.ByteSize, CompactFormat.Matrix(g, t)?.NonZeros ?? CompactFormat.RowGroupMatrix(g, t)?.StoredValues));
                }
            var fileBytes = File.Exists(m.Source) ? new FileInfo(m.Source).Length : 0;
            var info = new
            {
                path = m.Source,
                architecture = c.Architecture,
                parameters = m.ParameterCount,
                file_bytes = fileBytes,
                dim = c.Dim,
                layers = c.Layers,
                heads = c.Heads,
                kv_heads = c.KvHeads,
                head_dim = c.HeadDim,
                ffn_dim = c.FfnDim,
                layer_heads = c.LayerHeads, layer_kv_heads = c.LayerKvHeads, layer_ffn = c.LayerFfn, // per-layer (deci files), else null
                vocab_size = c.VocabSize,
                context_length = c.ContextLength,
                rope_base = c.RopeBase,
                rope_layout = c.RopeLayout.ToString(),
                rms_eps = c.RmsEps,
                qkv_bias = c.QkvBias,
                tied_embeddings = c.TiedEmbeddings,
                tokenizer = m.Gguf?.GetString("tokenizer.ggml.model"),
                weight_types = types,
                tensors = r.GetValue(tensors) ? tensorList : null,
            };
            if (r.GetValue(json)) { Cli.PrintJson(info); return 0; }
            var table = new Table().AddColumns("property", "value").HideHeaders().Border(TableBorder.Rounded);
            table.AddRow("file", Markup.Escape(m.Source));
            table.AddRow("architecture", Markup.Escape(c.Architecture));
            table.AddRow("parameters", $"{m.ParameterCount:N0} ({m.ParameterCount / 1e6:F1}M)");
            table.AddRow("file size", $"{fileBytes / 1048576.0:F1} MiB");
            table.AddRow("dim / layers", $"{c.Dim} / {c.Layers}");
            table.AddRow("heads / kv heads / head dim", $"{c.Heads} / {c.KvHeads} / {c.HeadDim}");
            table.AddRow("ffn", c.FfnDim.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (!c.IsUniform)
                table.AddRow("per layer (heads/kv/ffn)", string.Join(" ", Enumerable.Range(0, c.Layers).Select(l => $"{c.HeadsAt(l)}/{c.KvHeadsAt(l)}/{c.FfnAt(l)}")));
            table.AddRow("vocab / context", $"{c.VocabSize} / {c.ContextLength}");
            table.AddRow("rope", $"base {c.RopeBase}, {c.RopeDim} dims, {c.RopeLayout}");
            table.AddRow("output head", c.TiedEmbeddings ? "tied to token embedding" : "separate");
            table.AddRow("q/k/v bias", c.QkvBias ? "yes" : "no");
            table.AddRow("tokenizer", Markup.Escape(info.tokenizer ?? "none"));
            if (m.Gguf is { } cg && CompactFormat.IsCompact(cg))
                table.AddRow("storage", "Pare's compact sparse format (bitmask + packed non-zeros; Pare only)");
            table.AddRow("weight types", string.Join(", ", types.Select(kv => $"{kv.Key}: {kv.Value / 1e6:F2}M")));
            AnsiConsole.Write(table);
            if (r.GetValue(tensors) && m.Gguf is not null)
            {
                var tt = new Table().AddColumns("tensor", "shape", "type", "bytes");
                // Names and shapes ("[256, 8192]") are text, not Spectre markup.
                foreach (var t in tensorList)
                    tt.AddRow(Markup.Escape(t.name), Markup.Escape("[" + string.Join(", ", t.shape) + "]"), Markup.Escape(t.type),
                        t.bytes.ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
                AnsiConsole.Write(tt);
            }
            return 0;
        }));
        return cmd;
    }

#pragma warning disable IDE1006 // lower-case names: they are the JSON field names
    sealed record TensorRow(string name, long[] shape, string type, long bytes, long? non_zeros);
#pragma warning restore IDE1006
}
