using Pare.Generation;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Server;

/// <summary>A model the server answers for: its id (file name without extension), chat template and measured pass costs.</summary>
public sealed class ServedModel
{
    public ServedModel(string id, LlamaModel model, ServerOptions options)
    {
        Id = id;
        Model = model;
        if (model.Tokenizer == null) throw new PareException($"{model.Source}: the model has no tokenizer, so it cannot serve text");
        ContextLength = Math.Min(options.ContextLength ?? Math.Min(model.Config.ContextLength, 4096), model.Config.ContextLength);
        TemplateSource = model.Gguf?.Has("tokenizer.chat_template") == true ? model.Gguf.GetString("tokenizer.chat_template") : null;
        Template = ChatTemplate.FromTemplate(TemplateSource);
        var tok = model.Tokenizer;
        for (int i = 0; i < tok.VocabSize; i++) MaxTokenBytes = Math.Max(MaxTokenBytes, tok.TokenText(i).Length * 4);
        // Speculation's tree-size choice needs T(n); measure once here, not in every request.
        if (options.Draft != "none")
            Costs = CostModel.Measure(model.CreateSession(new SessionOptions { Threads = options.Threads, ContextLength = Math.Min(64, ContextLength) }),
                CostModel.DefaultSizes.Where(n => n <= options.MaxTree));
    }

    public string Id { get; }
    public LlamaModel Model { get; }
    public int ContextLength { get; }
    public ChatTemplate Template { get; }
    public string? TemplateSource { get; }
    public CostModel? Costs { get; }
    /// <summary>An upper bound on the UTF-8 bytes one token can cover: a prompt of more than ctx x this many bytes cannot fit.</summary>
    public int MaxTokenBytes { get; } = 4;
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}
