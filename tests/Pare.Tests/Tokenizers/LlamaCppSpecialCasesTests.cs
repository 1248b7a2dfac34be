using Pare.Tests.TestSupport;
using Pare.Tokenizers;
using Xunit.Abstractions;

namespace Pare.Tests.Tokenizers;

/// <summary>Parity with llama.cpp on vocabularies with user-defined, unused and unmergeable tokens, and bigger vocabularies.</summary>
public class LlamaCppSpecialCasesTests(ITestOutputHelper output)
{
    static readonly string[] s_texts =
    [
        TokenizerCorpus.MultiParagraph, .. TokenizerCorpus.EdgeCases,
        "call <tool> now<tool><tool>", "<tool>", " qwertyuiop", "qwertyuiop qwertyuiop", "Ġqwertyuiop", "xyzzy▁plugh", " ▁plugh",
        "the whale<|endoftext|>the ship", "<s>hello</s> <s> world",
    ];

    static TokenizerSpec WithExtras(TokenizerSpec spec, params (string Text, TokenType Type)[] extras)
    {
        var types = spec.TokenTypes ?? Enumerable.Repeat(1, spec.Tokens.Length).ToArray();
        return spec with
        {
            Tokens = [.. spec.Tokens, .. extras.Select(e => e.Text)],
            TokenTypes = [.. types, .. extras.Select(e => (int)e.Type)],
            Scores = spec.Scores is null ? null : [.. spec.Scores, .. extras.Select((e, i) => -1e6f - i)],
        };
    }

    void AssertParity(TokenizerSpec spec, IEnumerable<string> texts)
    {
        var pare = TokenizerFactory.FromSpec(spec);
        using var cpp = TokenizerGguf.Load(spec);
        int n = 0;
        foreach (var text in texts)
        {
            foreach (var (add, special) in new[] { (false, false), (true, false), (true, true) })
            {
                var expected = cpp.Tokenize(text, add, special);
                var actual = pare.Encode(text, add, special);
                Assert.True(expected.SequenceEqual(actual),
                    $"{spec.Model}/{spec.Pre} add={add} special={special} text={System.Text.Json.JsonSerializer.Serialize(text)}\n llama.cpp: {string.Join(",", expected)}\n pare:      {string.Join(",", actual)}");
                n++;
            }
        }
        output.WriteLine($"{spec.Model}/{spec.Pre}: {n} tokenizations identical");
    }

    [Theory]
    [InlineData("gpt-2")]
    [InlineData("llama3")]
    [InlineData("default")]
    public void Gpt2_UserDefinedUnusedAndUnmergeableTokens(string pre)
    {
        // "Ġqwertyuiop" has no merges that reach it: only llama3's ignore_merges emits it whole.
        var spec = WithExtras(TrainedVocabs.Gpt2 with { Pre = pre }, ("<tool>", TokenType.UserDefined), ("Ġqwertyuiop", TokenType.Normal), ("<unused0>", TokenType.Unused));
        AssertParity(spec, s_texts);
        var tok = TokenizerFactory.FromSpec(spec);
        int whole = spec.Tokens.Length - 2;
        Assert.Equal(pre == "llama3", tok.Encode(" qwertyuiop", false).SequenceEqual([whole]));
        Assert.Equal([spec.Tokens.Length - 3], tok.Encode("<tool>", false));
    }

    [Fact]
    public void Spm_UserDefinedAndCrossWordPieces()
    {
        // "xyzzy▁plugh" spans a ▁ boundary, which the chunked encoder must notice.
        var spec = WithExtras(TrainedVocabs.Spm, ("<tool>", TokenType.UserDefined), ("<unused0>", TokenType.Unused),
            ("xy", TokenType.Normal), ("xyz", TokenType.Normal), ("zy", TokenType.Normal), ("xyzzy", TokenType.Normal), ("y▁", TokenType.Normal), ("y▁p", TokenType.Normal), ("xyzzy▁p", TokenType.Normal));
        AssertParity(spec, s_texts);
        var ids = TokenizerFactory.FromSpec(spec).Encode("xyzzy plugh", false);
        Assert.Contains(ids, id => spec.Tokens[id].Contains('\u2581', StringComparison.Ordinal) && !spec.Tokens[id].StartsWith('\u2581'));
    }

    [Fact]
    public void LargerVocabularies_MatchLlamaCpp()
    {
        var corpus = TokenizerCorpus.Synthetic(400_000, seed: 3) + TokenizerCorpus.MultiParagraph;
        var texts = s_texts.Concat(TokenizerCorpus.Random(200, seed: 5)).Append(TokenizerCorpus.Synthetic(20_000, seed: 8));
        AssertParity(BpeTrainer.TrainGpt2([corpus], 4096, ["<s>", "</s>"], pre: "llama3", addBos: true), texts);
        AssertParity(SpmVocabBuilder.Build([corpus], 4096), texts);
    }

    [Fact]
    public void MissingFlags_UseLlamaCppDefaults()
    {
        string[] texts = ["hello world", "", " x"];
        foreach (var pre in new[] { "gpt-2", "default", "llama3", "qwen2" })
            AssertParity(TrainedVocabs.Gpt2 with { Pre = pre, AddBos = null, AddEos = null }, texts);
        AssertParity(TrainedVocabs.Spm with { AddBos = null, AddEos = null, AddSpacePrefix = null }, texts);
        AssertParity(TrainedVocabs.Spm with { AddEos = true }, texts);
    }

    [Fact]
    public void PreTokenizers_DifferInLlamaCppToo()
    {
        // The parity tests would notice a wrong regex choice: llama.cpp itself splits these differently per pre.
        using var gpt2 = TokenizerGguf.Load(TrainedVocabs.Gpt2 with { Pre = "gpt-2" });
        using var def = TokenizerGguf.Load(TrainedVocabs.Gpt2 with { Pre = "default" });
        using var llama3 = TokenizerGguf.Load(TrainedVocabs.Gpt2 with { Pre = "llama3" });
        using var qwen2 = TokenizerGguf.Load(TrainedVocabs.Gpt2 with { Pre = "qwen2" });
        const string s = "it's 1234567 don't\n\n  x";
        var all = new[] { gpt2, def, llama3, qwen2 }.Select(v => string.Join(",", v.Tokenize(s, false, false))).ToList();
        Assert.Equal(4, all.Distinct().Count());
    }

    [Fact]
    public void Gpt2PreAlias_IsRejectedByLlamaCpp_ButReadByPare()
    {
        // llama.cpp knows "gpt-2", not "gpt2"; Pare accepts both, and trainers write "gpt-2".
        var spec = TrainedVocabs.Gpt2 with { Pre = "gpt2" };
        Assert.Equal("gpt-2", ((Gpt2BpeTokenizer)TokenizerFactory.FromSpec(spec)).PreTokenizer.Family);
        Assert.Equal("gpt-2", TrainedVocabs.Gpt2.Pre);
        Assert.ThrowsAny<Exception>(() => TokenizerGguf.Load(spec).Dispose());
    }
}
