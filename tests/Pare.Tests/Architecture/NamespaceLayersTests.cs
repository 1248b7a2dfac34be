using System.Text.RegularExpressions;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Architecture;

/// <summary>
/// The namespaces of src/ are layered (README, style): Tensors -> Kernels -> Formats -> Tokenizers -> Models -> method
/// families -> Server / Extensions -> Cli; a namespace may only use those below it. Read from the sources (using
/// directives and qualified names in code), so an arrow running back fails here instead of in review.
/// </summary>
public class NamespaceLayersTests
{
    /// <summary>Rank of each top-level namespace under Pare; a namespace uses only strictly lower ranks.
    /// Families of one rank stay independent of each other.</summary>
    static readonly Dictionary<string, int> Rank = new()
    {
        ["Tensors"] = 0,
        ["Kernels"] = 1,
        ["Formats"] = 2,
        ["Tokenizers"] = 3,
        ["Models"] = 4,
        ["Generation"] = 5, ["Evaluation"] = 5, ["LongContext"] = 5, ["Data"] = 5,
        ["Training"] = 6, ["Speculative"] = 6, ["Rag"] = 6,
        ["Pruning"] = 7,
        ["Server"] = 8, ["Extensions"] = 8,
        ["Cli"] = 9,
    };

    [Fact]
    public void No_namespace_uses_one_above_it()
    {
        var src = Path.Combine(RepoPaths.Root(), "src");
        var files = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")
                     && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f => (Path: Path.GetRelativePath(src, f), Text: File.ReadAllText(f))).ToList();
        Assert.True(files.Count > 100, $"only {files.Count} sources found under {src}");

        var types = DeclaredTypes(files.Select(f => f.Text));
        var unknown = new SortedSet<string>();
        var back = new List<string>();
        foreach (var (path, text) in files)
            foreach (var (from, to, line) in Uses(text, types))
            {
                if (!Rank.ContainsKey(from)) { unknown.Add(from); continue; }
                if (!Rank.ContainsKey(to)) { unknown.Add(to); continue; }
                if (Rank[to] >= Rank[from]) back.Add($"Pare.{from} uses Pare.{to} ({path}:{line})");
            }
        Assert.True(unknown.Count == 0, "namespaces without a layer (add them to Rank): " + string.Join(", ", unknown));
        Assert.True(back.Count == 0, "arrows running back:\n" + string.Join("\n", back));
    }

    [Fact]
    public void The_scanner_sees_usings_full_and_relative_qualified_names()
    {
        const string code = """
            using Pare.Tensors;
            using Pare.Speculative.Drafters;

            namespace Pare.Kernels.Sparse;

            // Models.LlamaConfig in a comment is not a use
            class A
            {
                Models.LlamaConfig? c;
                Pare.Formats.Gguf.GgufFile? f;
                string s = "Training.Trainer";
                int Data => 1;
                int B() => Data.GetHashCode();
            }
            """;
        var types = new Dictionary<string, HashSet<string>>
        {
            ["Models"] = ["LlamaConfig"], ["Formats"] = ["Gguf"], ["Training"] = ["Trainer"], ["Data"] = ["Corpus"],
        };
        var uses = Uses(code, types).Select(u => $"{u.From}->{u.To}@{u.Line}").ToList();
        Assert.Equal(["Kernels->Tensors@1", "Kernels->Speculative@2", "Kernels->Models@9", "Kernels->Formats@10"], uses);
    }

    /// <summary>Per top-level namespace, the type names and sub-namespaces declared in it (to tell <c>Models.X</c>, a
    /// relative namespace reference, from <c>Data.X</c>, a member access).</summary>
    static Dictionary<string, HashSet<string>> DeclaredTypes(IEnumerable<string> sources)
    {
        var d = new Dictionary<string, HashSet<string>>();
        foreach (var text in sources)
        {
            var ns = Regex.Match(text, @"^namespace Pare\.([\w.]+)", RegexOptions.Multiline);
            if (!ns.Success) continue;
            var parts = ns.Groups[1].Value.Split('.');
            var set = d.TryGetValue(parts[0], out var s) ? s : d[parts[0]] = [];
            if (parts.Length > 1) set.Add(parts[1]);
            if (parts.Length == 1)
                foreach (Match m in Regex.Matches(text, @"\b(?:class|struct|record|interface|enum)\s+(\w+)"))
                    set.Add(m.Groups[1].Value);
        }
        return d;
    }

    /// <summary>(from, to, line) for every reference of one file to another top-level Pare namespace.</summary>
    static IEnumerable<(string From, string To, int Line)> Uses(string text, Dictionary<string, HashSet<string>> types)
    {
        var ns = Regex.Match(text, @"^namespace Pare\.(\w+)", RegexOptions.Multiline);
        if (!ns.Success) yield break;   // the root namespace (PareException) uses nothing
        string from = ns.Groups[1].Value;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string l = lines[i];
            var u = Regex.Match(l, @"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?Pare\.(\w+)");
            if (u.Success)
            {
                if (u.Groups[1].Value != from) yield return (from, u.Groups[1].Value, i + 1);
                continue;
            }
            if (l.TrimStart().StartsWith("namespace ", StringComparison.Ordinal)) continue;
            string code = Regex.Replace(Regex.Replace(l, @"//.*$", ""), "\"(?:[^\"\\\\]|\\\\.)*\"", "\"\"");
            var seen = new HashSet<string>();
            foreach (Match m in Regex.Matches(code, @"(?<![\w.])(Pare\.)?(\w+)\.(\w+)"))
            {
                string to = m.Groups[2].Value, member = m.Groups[3].Value;
                if (to == from || !types.TryGetValue(to, out var declared)) continue;
                // Relative names resolve to Pare.X only when X declares the member; "Pare.X." always is one.
                if (!m.Groups[1].Success && !declared.Contains(member)) continue;
                if (seen.Add(to)) yield return (from, to, i + 1);
            }
        }
    }
}
