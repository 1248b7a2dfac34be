using System.Text;

namespace Pare.Generation;

/// <summary>One message of a conversation: role ("system", "user", "assistant") and text.</summary>
public readonly record struct ChatTurn(string Role, string Content);

/// <summary>
/// Turns a conversation into the prompt text a model was trained on. No Jinja engine is available here, so the
/// GGUF's <c>tokenizer.chat_template</c> is recognized by fingerprint (as llama.cpp's built-in formats do) and rendered
/// by a per-family formatter: Llama-3, ChatML (Qwen, ...), Mistral / Llama-2 [INST], Gemma, Phi-3. Models without a
/// template (the reference models) get <see cref="Plain"/>: "System: ...", "User: ...", "Assistant: ..." lines ending
/// with "Assistant:", which a base model continues as dialogue.
/// </summary>
public sealed class ChatTemplate
{
    readonly Func<IReadOnlyList<ChatTurn>, string> _render;

    ChatTemplate(string name, bool special, IReadOnlyList<string> stops, Func<IReadOnlyList<ChatTurn>, string> render)
    {
        Name = name;
        UsesSpecialTokens = special;
        StopSequences = stops;
        _render = render;
    }

    /// <summary>The family: plain, llama3, chatml, mistral, llama2, gemma, phi3.</summary>
    public string Name { get; }
    /// <summary>Whether the rendered text holds control-token text (encode it with special-token parsing).</summary>
    public bool UsesSpecialTokens { get; }
    /// <summary>End-of-turn markers to stop at in addition to the model's EOS.</summary>
    public IReadOnlyList<string> StopSequences { get; }

    /// <summary>The prompt for the conversation, ending where the assistant's reply begins (BOS is the tokenizer's job).</summary>
    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        if (messages.Count == 0) throw new PareException("the conversation has no messages");
        return _render(messages);
    }

    /// <summary>The formatter for a GGUF's <c>tokenizer.chat_template</c> (null or unrecognized: <see cref="Plain"/>).</summary>
    public static ChatTemplate FromTemplate(string? template)
    {
        if (string.IsNullOrEmpty(template)) return Plain;
        if (template.Contains("<|start_header_id|>", StringComparison.Ordinal)) return Llama3;
        if (template.Contains("<|im_start|>", StringComparison.Ordinal)) return ChatMl;
        if (template.Contains("<start_of_turn>", StringComparison.Ordinal)) return Gemma;
        if (template.Contains("<|assistant|>", StringComparison.Ordinal) && template.Contains("<|end|>", StringComparison.Ordinal)) return Phi3;
        if (template.Contains("<<SYS>>", StringComparison.Ordinal)) return Llama2;
        if (template.Contains("[INST]", StringComparison.Ordinal)) return Mistral;
        return Plain;
    }

    /// <summary>Role-prefixed lines; the fallback for models without a template.</summary>
    public static ChatTemplate Plain { get; } = new("plain", false, [], m =>
    {
        var sb = new StringBuilder();
        foreach (var x in m) sb.Append(Title(x.Role)).Append(": ").Append(x.Content.Trim()).Append('\n');
        return sb.Append("Assistant:").ToString();
    });

    /// <summary>Llama 3: header-wrapped roles, turns end with &lt;|eot_id|&gt;.</summary>
    public static ChatTemplate Llama3 { get; } = new("llama3", true, ["<|eot_id|>"], m =>
    {
        var sb = new StringBuilder();
        foreach (var x in m)
            sb.Append("<|start_header_id|>").Append(x.Role).Append("<|end_header_id|>\n\n").Append(x.Content.Trim()).Append("<|eot_id|>");
        return sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n").ToString();
    });

    /// <summary>ChatML (Qwen and many fine-tunes): &lt;|im_start|&gt;role ... &lt;|im_end|&gt;.</summary>
    public static ChatTemplate ChatMl { get; } = new("chatml", true, ["<|im_end|>"], m =>
    {
        var sb = new StringBuilder();
        foreach (var x in m) sb.Append("<|im_start|>").Append(x.Role).Append('\n').Append(x.Content).Append("<|im_end|>\n");
        return sb.Append("<|im_start|>assistant\n").ToString();
    });

    /// <summary>Gemma: user and model turns; a system message is folded into the first user turn.</summary>
    public static ChatTemplate Gemma { get; } = new("gemma", true, ["<end_of_turn>"], m =>
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in FoldSystem(m, "\n\n"))
            sb.Append("<start_of_turn>").Append(role == "assistant" ? "model" : role).Append('\n').Append(content.Trim()).Append("<end_of_turn>\n");
        return sb.Append("<start_of_turn>model\n").ToString();
    });

    /// <summary>Phi-3: &lt;|role|&gt; newline content &lt;|end|&gt;.</summary>
    public static ChatTemplate Phi3 { get; } = new("phi3", true, ["<|end|>"], m =>
    {
        var sb = new StringBuilder();
        foreach (var x in m) sb.Append("<|").Append(x.Role).Append("|>\n").Append(x.Content).Append("<|end|>\n");
        return sb.Append("<|assistant|>\n").ToString();
    });

    /// <summary>Mistral (v0.1 template): [INST] user [/INST]assistant&lt;/s&gt;; a system message is prepended to the first user turn.</summary>
    public static ChatTemplate Mistral { get; } = new("mistral", true, [], m =>
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in FoldSystem(m, "\n\n"))
        {
            if (role == "assistant") sb.Append(content).Append("</s>");
            else sb.Append("[INST] ").Append(content).Append(" [/INST]");
        }
        return sb.ToString();
    });

    /// <summary>Llama 2 chat: as Mistral, with the system message in &lt;&lt;SYS&gt;&gt; markers.</summary>
    public static ChatTemplate Llama2 { get; } = new("llama2", true, [], m =>
    {
        var sb = new StringBuilder();
        string? system = m[0].Role == "system" ? m[0].Content : null;
        bool first = true;
        foreach (var x in m.Skip(system != null ? 1 : 0))
        {
            if (x.Role == "assistant") { sb.Append(' ').Append(x.Content.Trim()).Append(" </s>"); continue; }
            // Every user turn opens with BOS; the first one's is the tokenizer's.
            string content = first && system != null ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + x.Content : x.Content;
            sb.Append(first ? "[INST] " : "<s>[INST] ").Append(content.Trim()).Append(" [/INST]");
            first = false;
        }
        return sb.ToString();
    });

    static string Title(string role) => role.Length == 0 ? role : char.ToUpperInvariant(role[0]) + role[1..];

    /// <summary>Merges a leading system message into the first user message (for families without a system role).</summary>
    static IEnumerable<(string Role, string Content)> FoldSystem(IReadOnlyList<ChatTurn> m, string separator)
    {
        string? system = null;
        foreach (var x in m)
        {
            if (x.Role == "system") { system = system == null ? x.Content.Trim() : system + separator + x.Content.Trim(); continue; }
            if (system != null && x.Role == "user") { yield return ("user", system + separator + x.Content); system = null; continue; }
            yield return (x.Role, x.Content);
        }
        if (system != null) yield return ("user", system);
    }
}
