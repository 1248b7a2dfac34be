using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Pare.Generation;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over a Pare model in this process. The conversation is rendered with the model's chat
/// template (<see cref="ChatTemplate"/>; the plain fallback for models without one); ChatOptions' Temperature, TopP,
/// TopK, Seed, MaxOutputTokens, StopSequences and Instructions are honoured, tools are refused. One generation runs at
/// a time per client (the model's KV cache is one session); concurrent calls wait their turn.
/// </summary>
public sealed class PareChatClient : IChatClient
{
    readonly LlamaModel _model;
    readonly bool _ownsModel;
    readonly PareChatClientOptions _options;
    readonly ChatTemplate _template;
    readonly InferenceSession _session;
    readonly SemaphoreSlim _gate = new(1, 1);
    readonly CostModel? _costs;
    readonly ChatClientMetadata _metadata;
    StepRates? _rates;

    /// <summary>Loads the model at <paramref name="modelPath"/> (GGUF file or Hugging Face directory); disposed with the client.</summary>
    public PareChatClient(string modelPath, PareChatClientOptions? options = null)
        : this(LlamaModel.Load(modelPath), options, ownsModel: true) { }

    /// <summary>Over an already loaded model (not disposed with the client).</summary>
    public PareChatClient(LlamaModel model, PareChatClientOptions? options = null) : this(model, options, ownsModel: false) { }

    PareChatClient(LlamaModel model, PareChatClientOptions? options, bool ownsModel)
    {
        _model = model;
        _ownsModel = ownsModel;
        _options = options ?? new PareChatClientOptions();
        if (model.Tokenizer == null) throw new PareException($"{model.Source}: the model has no tokenizer, so it cannot chat");
        Drafters.Create(_options.Draft); // validates the name
        _template = ChatTemplate.FromTemplate(model.Gguf?.Has("tokenizer.chat_template") == true ? model.Gguf.GetString("tokenizer.chat_template") : null);
        int ctx = Math.Min(_options.ContextLength ?? Math.Min(model.Config.ContextLength, 4096), model.Config.ContextLength);
        _session = model.CreateSession(new SessionOptions { Threads = _options.Threads, ContextLength = ctx });
        if (_options.Draft != "none")
            _costs = CostModel.Measure(model.CreateSession(new SessionOptions { Threads = _options.Threads, ContextLength = Math.Min(64, ctx) }),
                CostModel.DefaultSizes.Where(n => n <= _options.MaxTree));
        ModelId = _options.ModelId ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.Source));
        _metadata = new ChatClientMetadata("pare", null, ModelId);
    }

    public string ModelId { get; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        await foreach (var u in GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            text.Append(u.Text);
            finish ??= u.FinishReason;
            foreach (var c in u.Contents) if (c is UsageContent uc) usage = uc.Details;
        }
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            FinishReason = finish, Usage = usage, ModelId = ModelId, CreatedAt = DateTimeOffset.UtcNow,
            ResponseId = "pare-" + Guid.NewGuid().ToString("N")[..16],
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (prompt, generation) = Prepare(messages, options);
        string responseId = "pare-" + Guid.NewGuid().ToString("N")[..16];
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _session.Reset();
            var drafter = Drafters.Create(_options.Draft);
            var spec = new SpeculativeOptions { MaxTreeSize = _options.MaxTree, Costs = _costs };
            if (drafter != null) _rates ??= new StepRates(spec);
            var stream = drafter == null
                ? Generator.GenerateAsync(_session, prompt, generation, cancellationToken)
                : SpeculativeGenerator.GenerateAsync(_session, prompt, generation, drafter, spec with { Rates = _rates }, new SpeculationStats(), cancellationToken);
            int count = 0;
            await foreach (var t in stream.WithCancellation(cancellationToken))
            {
                if (t.Id >= 0) count++;
                if (t.Text.Length > 0)
                    yield return new ChatResponseUpdate(ChatRole.Assistant, t.Text) { ResponseId = responseId, ModelId = ModelId };
            }
            var usage = new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = count, TotalTokenCount = prompt.Length + count };
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
            {
                ResponseId = responseId, ModelId = ModelId,
                FinishReason = count >= generation.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop,
            };
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Prompt tokens and generation options for a request; bad input is an <see cref="ArgumentException"/>.</summary>
    (int[] Prompt, GenerationOptions Options) Prepare(IEnumerable<ChatMessage> messages, ChatOptions? o)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (o?.Tools is { Count: > 0 }) throw new NotSupportedException("Pare's chat client does not call tools");
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(o?.Instructions)) turns.Add(new ChatTurn("system", o.Instructions));
        foreach (var m in messages)
        {
            string role = m.Role == ChatRole.System ? "system" : m.Role == ChatRole.User ? "user" : m.Role == ChatRole.Assistant ? "assistant"
                : throw new NotSupportedException($"messages with role '{m.Role}' are not supported");
            turns.Add(new ChatTurn(role, m.Text));
        }
        if (turns.Count == 0) throw new ArgumentException("the conversation has no messages", nameof(messages));
        int[] prompt = _model.Tokenizer!.Encode(_template.Render(turns), addSpecial: true, parseSpecial: _template.UsesSpecialTokens);
        int room = _session.ContextLength - prompt.Length;
        if (room < 1) throw new ArgumentException($"the prompt has {prompt.Length} tokens but the context holds {_session.ContextLength}", nameof(messages));
        if (o?.MaxOutputTokens is < 0) throw new ArgumentException("MaxOutputTokens must be 0 or more", nameof(o));
        var d = new SamplingOptions();
        var sampling = new SamplingOptions
        {
            Temperature = o?.Temperature ?? d.Temperature,
            TopP = o?.TopP ?? d.TopP,
            TopK = o?.TopK ?? d.TopK,
            Seed = o?.Seed is long s ? unchecked((ulong)s) : (ulong)Random.Shared.NextInt64(),
        };
        try { sampling.Validate(); }
        catch (PareException e) { throw new ArgumentException(e.Message, nameof(o), e); }
        return (prompt, new GenerationOptions
        {
            MaxTokens = Math.Min(o?.MaxOutputTokens ?? _options.DefaultMaxOutputTokens, room),
            Sampling = sampling,
            StopSequences = [.. o?.StopSequences ?? [], .. _template.StopSequences],
        });
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(LlamaModel)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        _gate.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
