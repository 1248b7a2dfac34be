using Pare.Tests.TestSupport;
using Pare.Tokenizers;
using Xunit.Abstractions;

namespace Pare.Tests.Tokenizers;

/// <summary>Shared trained vocabularies (training once per test run).</summary>
public static class TrainedVocabs
{
    public static readonly string Corpus = TokenizerCorpus.Synthetic(60_000) + TokenizerCorpus.MultiParagraph;

    static readonly Lazy<TokenizerSpec> s_gpt2 = new(() => BpeTrainer.TrainGpt2([Corpus], 1024));
    static readonly Lazy<TokenizerSpec> s_spm = new(() => SpmVocabBuilder.Build([Corpus], 1024));

    public static TokenizerSpec Gpt2 => s_gpt2.Value;
    public static TokenizerSpec Spm => s_spm.Value;
}

/// <summary>Pare's tokenizers against llama.cpp's on the same GGUF vocabulary.</summary>
public class LlamaCppParityTests(ITestOutputHelper output)
{
    static IEnumerable<string> AllStrings() =>
        [TokenizerCorpus.MultiParagraph, .. TokenizerCorpus.EdgeCases, .. TokenizerCorpus.Random(300), TokenizerCorpus.Synthetic(3000, seed: 7)];

    void AssertParity(TokenizerSpec spec)
    {
        var pare = TokenizerFactory.FromSpec(spec);
        using var cpp = TokenizerGguf.Load(spec);
        int n = 0, mismatches = 0;
        foreach (var text in AllStrings())
        {
            foreach (var (addSpecial, parseSpecial) in new[] { (false, false), (true, false), (true, true), (false, true) })
            {
                var expected = cpp.Tokenize(text, addSpecial, parseSpecial);
                var actual = pare.Encode(text, addSpecial, parseSpecial);
                n++;
                if (!expected.SequenceEqual(actual))
                {
                    if (mismatches++ < 5)
                        output.WriteLine($"MISMATCH add={addSpecial} special={parseSpecial} text={System.Text.Json.JsonSerializer.Serialize(text)}\n  llama.cpp: {string.Join(",", expected)}\n  pare:      {string.Join(",", actual)}");
                }
            }
        }
        output.WriteLine($"{n - mismatches}/{n} tokenizations identical");
        Assert.Equal(0, mismatches);
    }

    [Theory]
    [InlineData("gpt-2")]
    [InlineData("default")]
    [InlineData("llama3")]
    [InlineData("llama-bpe")]
    [InlineData("qwen2")]
    public void Gpt2Bpe_MatchesLlamaCpp(string pre) => AssertParity(TrainedVocabs.Gpt2 with { Pre = pre });

    [Fact]
    public void Gpt2Bpe_WithBos_MatchesLlamaCpp() => AssertParity(TrainedVocabs.Gpt2 with { AddBos = true });

    [Fact]
    public void SentencePiece_MatchesLlamaCpp() => AssertParity(TrainedVocabs.Spm);

    [Fact]
    public void SentencePiece_NoBos_NoSpacePrefix_MatchesLlamaCpp() => AssertParity(TrainedVocabs.Spm with { AddBos = false, AddSpacePrefix = false });

    [Fact]
    public void MultiParagraph_Gpt2_Identical()
    {
        var spec = TrainedVocabs.Gpt2;
        using var cpp = TokenizerGguf.Load(spec);
        var ids = TokenizerFactory.FromSpec(spec).Encode(TokenizerCorpus.MultiParagraph);
        Assert.Equal(cpp.Tokenize(TokenizerCorpus.MultiParagraph, true, false), ids);
        Assert.True(ids.Length > 100);
    }

    [Fact]
    public void TokenPieces_MatchLlamaCpp()
    {
        foreach (var spec in new[] { TrainedVocabs.Gpt2, TrainedVocabs.Spm })
        {
            var pare = TokenizerFactory.FromSpec(spec);
            using var cpp = TokenizerGguf.Load(spec);
            for (int id = 0; id < pare.VocabSize; id++)
                Assert.True(cpp.Piece(id).AsSpan().SequenceEqual(pare.TokenBytes(id)), $"{spec.Model} token {id} '{pare.TokenText(id)}'");
        }
    }
}
