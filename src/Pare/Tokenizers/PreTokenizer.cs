namespace Pare.Tokenizers;

/// <summary>
/// Splits text into words before byte-level BPE, as llama.cpp does for each <c>tokenizer.ggml.pre</c> value
/// (llama-vocab.cpp picks a list of regexes; unicode.cpp runs each over the pieces of the previous one).
/// The regexes are hand-coded here, like llama.cpp's own custom splitters, so the result matches it
/// exactly and runs without a regex engine.
/// </summary>
public sealed class PreTokenizer
{
    enum Kind { Default, Gpt2, Llama3 }

    readonly Kind _kind;
    readonly int _maxDigits;

    /// <summary>The pre name as given (normalised to the family it belongs to in <see cref="Family"/>).</summary>
    public string Name { get; }
    /// <summary>"default", "gpt-2", "llama3" or "qwen2".</summary>
    public string Family { get; }
    /// <summary>llama.cpp's ignore_merges: a word that is itself a token is emitted whole (llama3 family).</summary>
    public bool IgnoreMerges { get; }
    /// <summary>llama.cpp's default for add_bos_token when the file does not say.</summary>
    public bool DefaultAddBos { get; }

    PreTokenizer(string name, string family, Kind kind, int maxDigits, bool ignoreMerges, bool defaultAddBos)
    {
        Name = name; Family = family; _kind = kind; _maxDigits = maxDigits; IgnoreMerges = ignoreMerges; DefaultAddBos = defaultAddBos;
    }

    /// <summary>
    /// The pre-tokenizer for a <c>tokenizer.ggml.pre</c> value. Null or empty means "default" (llama.cpp warns and does the same).
    /// "gpt2" is accepted as an alias of llama.cpp's "gpt-2". Other unknown names are an error, as in llama.cpp.
    /// </summary>
    public static PreTokenizer ForName(string? pre) => pre switch
    {
        null or "" or "default" => new(pre ?? "default", "default", Kind.Default, 0, false, false),
        "gpt-2" or "gpt2" or "phi-2" or "jina-es" or "jina-de" or "jina-v1-en" or "jina-v2-es" or "jina-v2-de" or "jina-v2-code" or "roberta-bpe"
            => new(pre, "gpt-2", Kind.Gpt2, 0, false, false),
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "falcon-h1" or "pixtral" or "midm-2.0" or "lfm2"
            => new(pre, "llama3", Kind.Llama3, 3, true, true),
        "qwen2" or "deepseek-r1-qwen" => new(pre, "qwen2", Kind.Llama3, 1, false, false),
        _ => throw new InvalidModelException($"unknown pre-tokenizer type '{pre}' (Pare knows default, gpt-2, llama3/llama-bpe, qwen2)"),
    };

    /// <summary>Word boundaries of <paramref name="cps"/> as lengths in code points, covering the whole input.</summary>
    public List<int> Split(int[] cps)
    {
        var lens = new List<int>();
        if (cps.Length == 0) return lens;
        lens.Add(cps.Length);
        switch (_kind)
        {
            case Kind.Default:
                // llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT list:
                // [\p{P}\$\+<=>\^~\|]+ ; the GPT-2 regex ; \p{N}+ ; [0-9][0-9][0-9]
                lens = Runs(cps, lens, IsDefaultPunct);
                lens = Gpt2(cps, lens);
                lens = Runs(cps, lens, static c => (UnicodeClass.Of(c) & CharClass.Number) != 0);
                lens = AsciiDigitTriples(cps, lens);
                break;
            case Kind.Gpt2: lens = Gpt2(cps, lens); break;
            case Kind.Llama3: lens = Llama3(cps, lens, _maxDigits); break;
        }
        return lens;
    }

    static bool IsDefaultPunct(int c) => (UnicodeClass.Of(c) & CharClass.Punctuation) != 0 || c is '$' or '+' or '<' or '=' or '>' or '^' or '~' or '|';

    /// <summary>A regex <c>[X]+</c> as unicode_regex_split_stl applies it: maximal runs in X and the gaps between them.</summary>
    static List<int> Runs(int[] cps, List<int> offsets, Func<int, bool> inSet)
    {
        var res = new List<int>(offsets.Count * 2);
        int start = 0;
        foreach (int len in offsets)
        {
            int end = start + len, runStart = start;
            for (int i = start + 1; i <= end; i++)
            {
                if (i == end || inSet(cps[i]) != inSet(cps[runStart]))
                {
                    res.Add(i - runStart);
                    runStart = i;
                }
            }
            start = end;
        }
        return res;
    }

    /// <summary>The regex [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits, with the gaps between.</summary>
    static List<int> AsciiDigitTriples(int[] cps, List<int> offsets)
    {
        var res = new List<int>(offsets.Count);
        int start = 0;
        foreach (int len in offsets)
        {
            int end = start + len, prev = start;
            for (int i = start; i + 3 <= end;)
            {
                if (cps[i] is >= '0' and <= '9' && cps[i + 1] is >= '0' and <= '9' && cps[i + 2] is >= '0' and <= '9')
                {
                    if (i > prev) res.Add(i - prev);
                    res.Add(3);
                    i += 3;
                    prev = i;
                }
                else i++;
            }
            if (end > prev) res.Add(end - prev);
            start = end;
        }
        return res;
    }

    /// <summary>
    /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    /// (a port of llama.cpp's unicode_regex_split_custom_gpt2).
    /// </summary>
    static List<int> Gpt2(int[] cps, List<int> offsets)
    {
        var res = new List<int>(cps.Length / 3 + 1);
        int start = 0;
        foreach (int len in offsets)
        {
            int ini = start, end = start + len;
            start = end;
            int prevEnd = ini;
            int Cpt(int p) => ini <= p && p < end ? cps[p] : -1;
            CharClass Fl(int p) => ini <= p && p < end ? UnicodeClass.Of(cps[p]) : CharClass.None;
            bool InRange(int p) => ini <= p && p < end;
            void Add(int e) { if (e > prevEnd) res.Add(e - prevEnd); prevEnd = e; }

            for (int pos = ini; pos < end;)
            {
                int cpt = cps[pos];
                if (cpt == '\'' && pos + 1 < end)
                {
                    int n1 = Cpt(pos + 1);
                    if (n1 is 's' or 't' or 'm' or 'd') { pos += 2; Add(pos); continue; }
                    if (pos + 2 < end)
                    {
                        int n2 = Cpt(pos + 2);
                        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) { pos += 3; Add(pos); continue; }
                    }
                }
                bool sp = cpt == ' ';
                int p2 = sp ? pos + 1 : pos;
                var f2 = Fl(p2);
                if ((f2 & CharClass.Letter) != 0)
                {
                    pos = p2;
                    while ((Fl(pos) & CharClass.Letter) != 0) pos++;
                    Add(pos); continue;
                }
                if ((f2 & CharClass.Number) != 0)
                {
                    pos = p2;
                    while ((Fl(pos) & CharClass.Number) != 0) pos++;
                    Add(pos); continue;
                }
                if (InRange(p2) && (f2 & (CharClass.Whitespace | CharClass.Letter | CharClass.Number)) == 0)
                {
                    pos = p2;
                    while (InRange(pos) && (Fl(pos) & (CharClass.Whitespace | CharClass.Letter | CharClass.Number)) == 0) pos++;
                    Add(pos); continue;
                }
                int nws = 0;
                while ((Fl(pos + nws) & CharClass.Whitespace) != 0) nws++;
                if (nws > 1 && InRange(pos + nws)) { pos += nws - 1; Add(pos); continue; }
                if (nws > 0) { pos += nws; Add(pos); continue; }
                Add(++pos);
            }
        }
        return res;
    }

    /// <summary>
    /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    /// (llama.cpp's unicode_regex_split_custom_llama3); with <paramref name="maxDigits"/> = 1 it is Qwen2's \p{N} variant.
    /// </summary>
    static List<int> Llama3(int[] cps, List<int> offsets, int maxDigits)
    {
        var res = new List<int>(cps.Length / 3 + 1);
        int start = 0;
        foreach (int len in offsets)
        {
            int ini = start, end = start + len;
            start = end;
            int prevEnd = ini;
            int Cpt(int p) => ini <= p && p < end ? cps[p] : -1;
            CharClass Fl(int p) => ini <= p && p < end ? UnicodeClass.Of(cps[p]) : CharClass.None;
            bool InRange(int p) => ini <= p && p < end;
            void Add(int e) { if (e > prevEnd) res.Add(e - prevEnd); prevEnd = e; }
            static int Lower(int c) => c is >= 'A' and <= 'Z' ? c + 32 : c;

            for (int pos = ini; pos < end;)
            {
                int cpt = cps[pos];
                var flags = UnicodeClass.Of(cpt);
                if (cpt == '\'' && pos + 1 < end)
                {
                    int n1 = Lower(Cpt(pos + 1));
                    if (n1 is 's' or 't' or 'm' or 'd') { pos += 2; Add(pos); continue; }
                    if (pos + 2 < end)
                    {
                        int n2 = Lower(Cpt(pos + 2));
                        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) { pos += 3; Add(pos); continue; }
                    }
                }
                if (!(cpt == '\r' || cpt == '\n' || (flags & CharClass.Number) != 0))
                {
                    if ((flags & CharClass.Letter) != 0 || (Fl(pos + 1) & CharClass.Letter) != 0)
                    {
                        pos++;
                        while ((Fl(pos) & CharClass.Letter) != 0) pos++;
                        Add(pos); continue;
                    }
                }
                if ((flags & CharClass.Number) != 0)
                {
                    int i0 = pos;
                    while ((Fl(pos) & CharClass.Number) != 0)
                    {
                        if (++pos - i0 >= maxDigits) { Add(pos); i0 = pos; }
                    }
                    Add(pos); continue;
                }
                var f2 = cpt == ' ' ? Fl(pos + 1) : flags;
                if ((f2 & (CharClass.Whitespace | CharClass.Letter | CharClass.Number)) == 0 && (cpt != ' ' || InRange(pos + 1)))
                {
                    if (cpt == ' ') pos++;
                    while (InRange(pos) && (Fl(pos) & (CharClass.Whitespace | CharClass.Letter | CharClass.Number)) == 0) pos++;
                    while (Cpt(pos) is '\r' or '\n') pos++;
                    Add(pos); continue;
                }
                int nws = 0, lastRn = 0;
                while ((Fl(pos + nws) & CharClass.Whitespace) != 0)
                {
                    if (Cpt(pos + nws) is '\r' or '\n') lastRn = pos + nws + 1;
                    nws++;
                }
                if (lastRn > 0) { pos = lastRn; Add(pos); continue; }
                if (nws > 1 && InRange(pos + nws)) { pos += nws - 1; Add(pos); continue; }
                if (nws > 0) { pos += nws; Add(pos); continue; }
                Add(++pos);
            }
        }
        return res;
    }
}
