using System.Text.Encodings.Web;
using System.Text.Json;

namespace Pare.Tokenizers;

/// <summary>
/// Reads and writes Hugging Face <c>tokenizer.json</c> files for the two BPE flavours GGUF has:
/// byte-level BPE (GPT-2, Llama 3, Qwen2: ByteLevel pre-tokenizer, becomes the gpt2 kind) and
/// SentencePiece-style BPE (Llama 2, Mistral: byte_fallback with the Prepend/Replace "▁" normalizer, becomes the
/// llama kind, with each piece scored by the rank of the first merge that makes it).
/// </summary>
public static class HfTokenizerJson
{
    const string Gpt2Regex = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    const string Llama3Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const string Qwen2Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const string AdaptedContractions = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
    /// <summary>llama.cpp's "default" pre-tokenizer: four regexes, each splitting the pieces of the one before.</summary>
    static readonly string[] s_defaultChain = [@"[\p{P}\$\+<=>\^~\|]+", @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)", @"\p{N}+", "[0-9][0-9][0-9]"];

    static readonly Dictionary<string, string> s_preByRegex = new(StringComparer.Ordinal)
    {
        [Gpt2Regex] = "gpt-2",
        [Gpt2Regex[..^4]] = "gpt-2",
        [Llama3Regex] = "llama3",
        [AdaptedContractions + Llama3Regex[Llama3Regex.IndexOf('|', StringComparison.Ordinal)..]] = "llama3",
        [Qwen2Regex] = "qwen2",
        [AdaptedContractions + Qwen2Regex[Qwen2Regex.IndexOf('|', StringComparison.Ordinal)..]] = "qwen2",
    };

    /// <summary>Reads a tokenizer.json file. BOS/EOS come from a TemplateProcessing post-processor or the override arguments.</summary>
    public static TokenizerSpec Load(string path, int? bosId = null, int? eosId = null)
    {
        string json;
        try { json = File.ReadAllText(path); }
        catch (IOException e) { throw new PareException($"{path}: cannot read: {e.Message}", e); }
        try { return Parse(json, bosId, eosId); }
        catch (InvalidModelException e) { throw new InvalidModelException($"{path}: {e.Message}", e); }
    }

    public static TokenizerSpec Parse(string json, int? bosId = null, int? eosId = null)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidModelException($"tokenizer.json is not valid JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("model", out var model) || Str(model, "type") != "BPE")
                throw new InvalidModelException($"tokenizer.json model type '{(root.TryGetProperty("model", out var m) ? Str(m, "type") : null) ?? "none"}' is not supported (Pare reads BPE)");

            // Vocabulary: model.vocab plus added_tokens, which may extend it.
            var byId = new SortedDictionary<int, string>();
            if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object) throw new InvalidModelException("tokenizer.json has no model.vocab object");
            foreach (var p in vocab.EnumerateObject())
            {
                int id = p.Value.GetInt32();
                if (id < 0) throw new InvalidModelException($"token '{p.Name}' has negative id {id}");
                if (!byId.TryAdd(id, p.Name)) throw new InvalidModelException($"tokens '{byId[id]}' and '{p.Name}' share id {id}");
            }
            var special = new Dictionary<int, bool>();
            if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (var a in added.EnumerateArray())
                {
                    int id = a.GetProperty("id").GetInt32();
                    string content = a.GetProperty("content").GetString() ?? "";
                    if (byId.TryGetValue(id, out var existing) && existing != content) throw new InvalidModelException($"added token {id} '{content}' clashes with vocabulary token '{existing}'");
                    byId[id] = content;
                    special[id] = a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                }
            }
            int n = byId.Count;
            if (n == 0 || byId.Keys.Last() != n - 1) throw new InvalidModelException($"token ids are not 0..{n - 1} without gaps");
            var tokens = byId.Values.ToArray();

            var merges = new List<string>();
            if (model.TryGetProperty("merges", out var mj))
            {
                foreach (var e in mj.EnumerateArray())
                {
                    if (e.ValueKind == JsonValueKind.String) merges.Add(e.GetString()!);
                    else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2) merges.Add(e[0].GetString() + " " + e[1].GetString());
                    else throw new InvalidModelException($"merge {merges.Count} is neither \"a b\" nor [\"a\", \"b\"]");
                }
            }

            string? unk = Str(model, "unk_token");
            bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
            var types = new int[n];
            for (int i = 0; i < n; i++)
            {
                var t = TokenType.Normal;
                if (special.TryGetValue(i, out bool isSpecial)) t = isSpecial ? TokenType.Control : TokenType.UserDefined;
                if (tokens[i] == unk) t = TokenType.Unknown;
                else if (byteFallback && IsByteToken(tokens[i])) t = TokenType.Byte;
                types[i] = (int)t;
            }

            var (addBos, templBos, addEos, templEos) = Template(root, tokens);
            int? Find(params string[] names) => names.Select(s => Array.IndexOf(tokens, s)).Where(i => i >= 0).Select(i => (int?)i).FirstOrDefault();

            if (byteFallback || HasSpmNormalizer(root))
            {
                // SentencePiece-style: score each piece by the rank of the first merge that produces it.
                var scores = new float[n];
                var ids = new Dictionary<string, int>(StringComparer.Ordinal);
                for (int i = 0; i < n; i++) ids[tokens[i]] = i;
                var scored = new bool[n];
                for (int r = 0; r < merges.Count; r++)
                {
                    int sp = merges[r].IndexOf(' ', 1);
                    if (sp < 0) throw new InvalidModelException($"merge {r} '{merges[r]}' is not two tokens separated by a space");
                    if (ids.TryGetValue(merges[r].Remove(sp, 1), out int id) && !scored[id]) { scored[id] = true; scores[id] = -r; }
                }
                for (int i = 0; i < n; i++)
                    if (!scored[i] && types[i] == (int)TokenType.Normal) scores[i] = -(merges.Count + i); // characters and unreachable pieces
                return new TokenizerSpec
                {
                    Model = "llama",
                    Tokens = tokens,
                    Scores = scores,
                    TokenTypes = types,
                    BosId = bosId ?? templBos ?? Find("<s>"),
                    EosId = eosId ?? templEos ?? Find("</s>"),
                    UnknownId = unk != null && ids.TryGetValue(unk, out int u) ? u : null,
                    AddBos = addBos ?? true,
                    AddEos = addEos ?? false,
                    AddSpacePrefix = HasSpmNormalizer(root),
                };
            }

            return new TokenizerSpec
            {
                Model = "gpt2",
                Pre = PreName(root),
                Tokens = tokens,
                TokenTypes = types,
                Merges = [.. merges],
                BosId = bosId ?? templBos ?? Find("<|begin_of_text|>", "<|endoftext|>", "<s>"),
                EosId = eosId ?? templEos ?? Find("<|endoftext|>", "<|end_of_text|>", "</s>"),
                AddBos = addBos ?? false,
                AddEos = addEos ?? false,
            };
        }
    }

    static bool IsByteToken(string t) => t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>' && Uri.IsHexDigit(t[3]) && Uri.IsHexDigit(t[4]);

    static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    static IEnumerable<JsonElement> Flatten(JsonElement e, string listName)
    {
        if (e.ValueKind != JsonValueKind.Object) yield break;
        if (Str(e, "type") == "Sequence" && e.TryGetProperty(listName, out var list))
        {
            foreach (var x in list.EnumerateArray())
                foreach (var y in Flatten(x, listName)) yield return y;
        }
        else yield return e;
    }

    static bool HasSpmNormalizer(JsonElement root) =>
        root.TryGetProperty("normalizer", out var norm)
        && Flatten(norm, "normalizers").Any(x => Str(x, "type") == "Replace" && x.TryGetProperty("pattern", out var p) && Str(p, "String") == " " && Str(x, "content") == "\u2581");

    /// <summary>The GGUF pre name for a byte-level pre-tokenizer: ByteLevel alone is GPT-2's regex; Split regexes are matched by text.</summary>
    static string PreName(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new InvalidModelException("tokenizer.json BPE model has no pre_tokenizer; Pare reads byte-level BPE (ByteLevel pre-tokenizer)");
        var steps = Flatten(pre, "pretokenizers").ToList();
        var regexes = new List<string>();
        bool byteLevel = false;
        foreach (var s in steps)
        {
            switch (Str(s, "type"))
            {
                case "ByteLevel":
                    byteLevel = true;
                    if (s.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                        throw new InvalidModelException("ByteLevel add_prefix_space = true is not supported (llama.cpp has no such pre-tokenizer)");
                    if (!s.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False) regexes.Add(Gpt2Regex);
                    break;
                case "Split":
                    string? rx = s.TryGetProperty("pattern", out var p) ? Str(p, "Regex") ?? Str(p, "String") : null;
                    if (rx is null) throw new InvalidModelException("Split pre-tokenizer without a pattern");
                    regexes.Add(rx);
                    break;
                default: throw new InvalidModelException($"pre-tokenizer '{Str(s, "type")}' is not supported");
            }
        }
        if (!byteLevel) throw new InvalidModelException("BPE without a ByteLevel pre-tokenizer or byte_fallback is not supported");
        if (regexes.SequenceEqual(s_defaultChain) || regexes.SequenceEqual([.. s_defaultChain[..1], Gpt2Regex, .. s_defaultChain[2..]])) return "default";
        if (regexes.Count == 1 && s_preByRegex.TryGetValue(regexes[0], out var name)) return name;
        throw new InvalidModelException($"pre-tokenizer regexes [{string.Join(" ; ", regexes)}] match none of llama.cpp's that Pare knows (gpt-2, llama3, qwen2, default)");
    }

    /// <summary>BOS/EOS from a TemplateProcessing post-processor's single-sequence template.</summary>
    static (bool? AddBos, int? Bos, bool? AddEos, int? Eos) Template(JsonElement root, string[] tokens)
    {
        if (!root.TryGetProperty("post_processor", out var pp)) return (null, null, null, null);
        var tp = Flatten(pp, "processors").FirstOrDefault(x => Str(x, "type") == "TemplateProcessing");
        if (tp.ValueKind != JsonValueKind.Object || !tp.TryGetProperty("single", out var single)) return (null, null, null, null);
        var items = single.EnumerateArray().ToList();
        int? SpecialId(JsonElement item)
        {
            if (!item.TryGetProperty("SpecialToken", out var st)) return null;
            int i = Array.IndexOf(tokens, Str(st, "id"));
            return i >= 0 ? i : throw new InvalidModelException($"post-processor names unknown special token '{Str(st, "id")}'");
        }
        int? bos = items.Count > 0 ? SpecialId(items[0]) : null;
        int? eos = items.Count > 1 ? SpecialId(items[^1]) : null;
        return (bos != null, bos, eos != null, eos);
    }

    /// <summary>
    /// A tokenizer.json for <paramref name="spec"/>. A gpt2 spec becomes byte-level BPE with its pre-tokenizer spelled
    /// as Split regexes; a llama spec becomes BPE with byte_fallback whose merges list, for every piece in order of
    /// falling score, each way to make it from two tokens. BOS/EOS added by default become a TemplateProcessing post-processor.
    /// </summary>
    public static string ToHfJson(TokenizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var types = spec.TokenTypes ?? Enumerable.Repeat((int)TokenType.Normal, spec.Tokens.Length).ToArray();
        bool spm = spec.Model switch
        {
            "llama" => true,
            "gpt2" => false,
            _ => throw new InvalidModelException($"tokenizer model '{spec.Model}' cannot be written as tokenizer.json"),
        };
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < spec.Tokens.Length; i++)
            {
                var t = (TokenType)types[i];
                if (t is not (TokenType.Control or TokenType.UserDefined or TokenType.Unknown)) continue;
                w.WriteStartObject();
                w.WriteNumber("id", i);
                w.WriteString("content", spec.Tokens[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", t == TokenType.UserDefined);
                w.WriteBoolean("special", t != TokenType.UserDefined);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            if (spm)
            {
                w.WriteStartObject("normalizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("normalizers");
                if (spec.AddSpacePrefix ?? true)
                {
                    w.WriteStartObject(); w.WriteString("type", "Prepend"); w.WriteString("prepend", "\u2581"); w.WriteEndObject();
                }
                w.WriteStartObject(); w.WriteString("type", "Replace");
                w.WriteStartObject("pattern"); w.WriteString("String", " "); w.WriteEndObject();
                w.WriteString("content", "\u2581"); w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteNull("pre_tokenizer");
            }
            else
            {
                w.WriteNull("normalizer");
                var pre = PreTokenizer.ForName(spec.Pre);
                string[] regexes = pre.Family switch
                {
                    "default" => s_defaultChain,
                    "llama3" => [Llama3Regex],
                    "qwen2" => [Qwen2Regex],
                    _ => [Gpt2Regex],
                };
                w.WriteStartObject("pre_tokenizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("pretokenizers");
                foreach (var rx in regexes)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "Split");
                    w.WriteStartObject("pattern"); w.WriteString("Regex", rx); w.WriteEndObject();
                    w.WriteString("behavior", "Isolated");
                    w.WriteBoolean("invert", false);
                    w.WriteEndObject();
                }
                w.WriteStartObject();
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("trim_offsets", true);
                w.WriteBoolean("use_regex", false);
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
            }

            bool addBos = spec.AddBos ?? spm, addEos = spec.AddEos ?? false;
            if ((addBos && spec.BosId is int) || (addEos && spec.EosId is int))
            {
                w.WriteStartObject("post_processor");
                w.WriteString("type", "TemplateProcessing");
                w.WriteStartArray("single");
                if (addBos && spec.BosId is int b) { w.WriteStartObject(); w.WriteStartObject("SpecialToken"); w.WriteString("id", spec.Tokens[b]); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject(); }
                w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", "A"); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject();
                if (addEos && spec.EosId is int e) { w.WriteStartObject(); w.WriteStartObject("SpecialToken"); w.WriteString("id", spec.Tokens[e]); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject(); }
                w.WriteEndArray();
                w.WriteStartArray("pair"); w.WriteEndArray();
                w.WriteStartObject("special_tokens");
                foreach (int id in new[] { addBos ? spec.BosId : null, addEos ? spec.EosId : null }.OfType<int>().Distinct())
                {
                    w.WriteStartObject(spec.Tokens[id]);
                    w.WriteString("id", spec.Tokens[id]);
                    w.WriteStartArray("ids"); w.WriteNumberValue(id); w.WriteEndArray();
                    w.WriteStartArray("tokens"); w.WriteStringValue(spec.Tokens[id]); w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            else w.WriteNull("post_processor");

            w.WriteStartObject("decoder");
            if (spm)
            {
                w.WriteString("type", "Sequence");
                w.WriteStartArray("decoders");
                w.WriteStartObject(); w.WriteString("type", "Replace"); w.WriteStartObject("pattern"); w.WriteString("String", "\u2581"); w.WriteEndObject(); w.WriteString("content", " "); w.WriteEndObject();
                w.WriteStartObject(); w.WriteString("type", "ByteFallback"); w.WriteEndObject();
                w.WriteStartObject(); w.WriteString("type", "Fuse"); w.WriteEndObject();
                if (spec.AddSpacePrefix ?? true) { w.WriteStartObject(); w.WriteString("type", "Strip"); w.WriteString("content", " "); w.WriteNumber("start", 1); w.WriteNumber("stop", 0); w.WriteEndObject(); }
                w.WriteEndArray();
            }
            else
            {
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("trim_offsets", true);
                w.WriteBoolean("use_regex", false);
            }
            w.WriteEndObject();

            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            if (spm && spec.UnknownId is int u) w.WriteString("unk_token", spec.Tokens[u]); else w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", spm);
            w.WriteBoolean("byte_fallback", spm);
            w.WriteBoolean("ignore_merges", !spm && PreTokenizer.ForName(spec.Pre).IgnoreMerges);
            w.WriteStartObject("vocab");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < spec.Tokens.Length; i++)
            {
                // A JSON object cannot repeat a key: a duplicated token text keeps only its last id, as llama.cpp's lookup does.
                if (Array.LastIndexOf(spec.Tokens, spec.Tokens[i]) != i) continue;
                if (seen.Add(spec.Tokens[i])) w.WriteNumber(spec.Tokens[i], i);
            }
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in spm ? SpmMerges(spec, types) : spec.Merges!.Select(SplitMerge))
            {
                w.WriteStartArray(); w.WriteStringValue(a); w.WriteStringValue(b); w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }

    static (string, string) SplitMerge(string m)
    {
        int sp = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
        if (sp < 0) throw new InvalidModelException($"merge '{m}' is not two tokens separated by a space");
        return (m[..sp], m[(sp + 1)..]);
    }

    /// <summary>Every split of every normal multi-character piece into two tokens, pieces in order of falling score.</summary>
    static IEnumerable<(string, string)> SpmMerges(TokenizerSpec spec, int[] types)
    {
        var scores = spec.Scores ?? new float[spec.Tokens.Length];
        var ids = new HashSet<string>(spec.Tokens, StringComparer.Ordinal);
        var order = Enumerable.Range(0, spec.Tokens.Length)
            .Where(i => types[i] == (int)TokenType.Normal && spec.Tokens[i].EnumerateRunes().Count() > 1)
            .OrderByDescending(i => scores[i]).ThenBy(i => i);
        foreach (int i in order)
        {
            string t = spec.Tokens[i];
            for (int k = 1; k < t.Length; k++)
            {
                if (char.IsLowSurrogate(t[k])) continue;
                string a = t[..k], b = t[k..];
                if (ids.Contains(a) && ids.Contains(b)) yield return (a, b);
            }
        }
    }
}
