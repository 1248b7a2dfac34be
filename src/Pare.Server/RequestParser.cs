using System.Text.Json;
using Pare.Generation;

namespace Pare.Server;

/// <summary>
/// Reads a request body strictly: a JSON object whose known fields have the right types and ranges, else a 400 with
/// the offending parameter named. Unknown fields are ignored (clients send many); unsupported ones that change the
/// result (n != 1, echo, best_of, suffix, tools, logprobs) are refused rather than silently ignored.
/// </summary>
internal static class RequestParser
{
    static readonly JsonDocumentOptions DocOptions = new() { MaxDepth = 32 };

    public static CompletionRequest Parse(ReadOnlyMemory<byte> body, bool chat)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body, DocOptions); }
        catch (JsonException e) { throw ApiError.BadRequest($"the body is not valid JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("the body must be a JSON object");
            if (Int(root, "n", 1, 1) is int n && n != 1) throw ApiError.BadRequest("only one completion choice is allowed (n must be 1)", "n");
            foreach (var unsupported in chat ? new[] { "tools", "functions", "logprobs", "top_logprobs" } : ["echo", "best_of", "suffix", "logprobs"])
                if (root.TryGetProperty(unsupported, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
                    throw ApiError.BadRequest($"'{unsupported}' is not supported by this server", unsupported);

            int? maxTokens = Int(root, "max_completion_tokens", -1, int.MaxValue) ?? Int(root, "max_tokens", -1, int.MaxValue) ?? Int(root, "n_predict", -1, int.MaxValue);
            return new CompletionRequest
            {
                Chat = chat,
                Model = String(root, "model"),
                Messages = chat ? Messages(root) : [],
                Prompt = chat ? "" : Prompt(root),
                Stream = Bool(root, "stream") ?? false,
                IncludeUsage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
                    ? Bool(so, "include_usage", "stream_options.include_usage") ?? false
                    : so.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null ? false : throw ApiError.BadRequest("'stream_options' must be an object", "stream_options"),
                MaxTokens = maxTokens is -1 ? int.MaxValue : maxTokens, // -1: as much as the context allows (llama.cpp)
                Stop = Stop(root),
                Temperature = Float(root, "temperature", 0, 100),
                TopP = Float(root, "top_p", 0, 1, lowOpen: true),
                TopK = Int(root, "top_k", 0, int.MaxValue),
                MinP = Float(root, "min_p", 0, 1, highOpen: true),
                RepeatPenalty = Float(root, "repeat_penalty", 0, 100, lowOpen: true),
                Seed = Seed(root),
            };
        }
    }

    static IReadOnlyList<ChatTurn> Messages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var m)) throw ApiError.BadRequest("'messages' is required", "messages");
        if (m.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest("'messages' must be an array", "messages");
        if (m.GetArrayLength() == 0) throw ApiError.BadRequest("'messages' must not be empty", "messages");
        var list = new List<ChatTurn>();
        int i = 0;
        foreach (var x in m.EnumerateArray())
        {
            string p = $"messages[{i++}]";
            if (x.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"'{p}' must be an object", p);
            string role = String(x, "role", p + ".role") ?? throw ApiError.BadRequest($"'{p}.role' is required", p + ".role");
            role = role switch
            {
                "system" or "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                _ => throw ApiError.BadRequest($"'{p}.role' must be system, developer, user or assistant (got '{Short(role)}')", p + ".role"),
            };
            list.Add(new ChatTurn(role, Content(x, p + ".content")));
        }
        return list;
    }

    /// <summary>A string, or an array of parts of which the "text" ones are joined (images etc. are refused).</summary>
    static string Content(JsonElement message, string p)
    {
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"'{p}' must be a string or an array of text parts", p);
        var sb = new System.Text.StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || String(part, "type", p) != "text")
                throw ApiError.BadRequest($"'{p}' parts must be text parts ({{\"type\":\"text\",\"text\":...}})", p);
            sb.Append(String(part, "text", p) ?? "");
        }
        return sb.ToString();
    }

    static string Prompt(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var v)) throw ApiError.BadRequest("'prompt' is required", "prompt");
        if (v.ValueKind == JsonValueKind.String) return v.GetString()!;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 1 && v[0].ValueKind == JsonValueKind.String) return v[0].GetString()!;
        throw ApiError.BadRequest("'prompt' must be a string (or an array of one string)", "prompt");
    }

    static IReadOnlyList<string> Stop(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var v) || v.ValueKind == JsonValueKind.Null) return [];
        if (v.ValueKind == JsonValueKind.String) return v.GetString()!.Length == 0 ? [] : [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() > 16) throw ApiError.BadRequest("'stop' must be a string or an array of at most 16 strings", "stop");
        var list = new List<string>();
        foreach (var s in v.EnumerateArray())
        {
            if (s.ValueKind != JsonValueKind.String) throw ApiError.BadRequest("'stop' entries must be strings", "stop");
            if (s.GetString()!.Length > 0) list.Add(s.GetString()!);
        }
        return list;
    }

    static ulong? Seed(JsonElement root)
    {
        if (!root.TryGetProperty("seed", out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number)
        {
            if (v.TryGetUInt64(out var u)) return u;
            if (v.TryGetInt64(out var s) && s == -1) return null; // llama.cpp: -1 = random
        }
        throw ApiError.BadRequest("'seed' must be an integer in 0..2^64-1 (or -1 for random)", "seed");
    }

    static string? String(JsonElement o, string name, string? param = null)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw ApiError.BadRequest($"'{param ?? name}' must be a string", param ?? name);
        return v.GetString();
    }

    static bool? Bool(JsonElement o, string name, string? param = null)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.BadRequest($"'{param ?? name}' must be true or false", param ?? name),
        };
    }

    static int? Int(JsonElement o, string name, int min, int max)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x) || x < min || x > max)
            throw ApiError.BadRequest($"'{name}' must be an integer in {min}..{max}", name);
        return (int)x;
    }

    static float? Float(JsonElement o, string name, double min, double max, bool lowOpen = false, bool highOpen = false)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x)
            || x < min || x > max || (lowOpen && x == min) || (highOpen && x == max))
            throw ApiError.BadRequest($"'{name}' must be a number in {(lowOpen ? "(" : "[")}{min}, {max}{(highOpen ? ")" : "]")}", name);
        return (float)x;
    }

    static string Short(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
