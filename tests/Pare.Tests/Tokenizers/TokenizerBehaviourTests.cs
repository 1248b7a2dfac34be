using System.Diagnostics;
using System.Text;
using Pare.Formats.Gguf;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;
using Xunit.Abstractions;

namespace Pare.Tests.Tokenizers;

public class TokenizerBehaviourTests(ITestOutputHelper output)
{
    static IEnumerable<string> Texts() =>
        [TokenizerCorpus.MultiParagraph, .. TokenizerCorpus.EdgeCases.Where(s => !s.Contains('\uD800')), .. TokenizerCorpus.Random(200).Where(s => !s.Contains('\uD800'))];

    [Fact]
    public void Gpt2_DecodeEncode_RoundTrips()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Gpt2);
        foreach (var text in Texts())
            Assert.Equal(text, tok.Decode(tok.Encode(text, addSpecial: true)));
    }

    [Fact]
    public void Spm_DecodeEncode_RoundTripsWithSpacePrefixRule()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Spm);
        // A ▁ in the input reads back as a space: SentencePiece cannot tell them apart.
        foreach (var text in Texts().Where(t => !t.Contains('\u2581')))
        {
            var ids = tok.Encode(text, addSpecial: true);
            Assert.Equal(text, tok.Decode(ids));
            Assert.Equal(text.Length == 0 ? "" : " " + text, tok.Decode(ids, stripSpacePrefix: false));
        }
    }

    [Fact]
    public void LoneSurrogate_EncodesAsReplacementCharacter()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Gpt2);
        Assert.Equal(tok.Encode("a\uFFFDb"), tok.Encode("a\uD800b"));
    }

    [Fact]
    public void StreamingDecoder_EqualsWholeDecode_AndNeverBreaksCharacters()
    {
        foreach (var spec in new[] { TrainedVocabs.Gpt2, TrainedVocabs.Spm })
        {
            var tok = TokenizerFactory.FromSpec(spec);
            foreach (var text in Texts().Where(t => spec.Model == "gpt2" || !t.Contains('\u2581')))
            {
                var ids = tok.Encode(text, addSpecial: true);
                var sd = new StreamingDecoder(tok);
                var sb = new StringBuilder();
                foreach (int id in ids)
                {
                    string piece = sd.Push(id);
                    if (!text.Contains('\uFFFD')) Assert.DoesNotContain('\uFFFD', piece);
                    if (piece.Length > 0) Assert.False(char.IsHighSurrogate(piece[^1]), "piece ends inside a surrogate pair");
                    sb.Append(piece);
                }
                sb.Append(sd.Flush());
                Assert.Equal(tok.Decode(ids), sb.ToString());
                Assert.Equal(text, sb.ToString());
            }
        }
    }

    [Fact]
    public void StreamingDecoder_HoldsEmojiSplitIntoByteTokens()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Spm);
        var ids = tok.Encode("🦀", addSpecial: false);
        // "▁" then four <0xXX> byte tokens (🦀 is not in the small vocabulary).
        Assert.Equal(5, ids.Length);
        var sd = new StreamingDecoder(tok, stripSpacePrefix: false);
        var pieces = ids.Select(sd.Push).ToList();
        Assert.All(pieces.Take(pieces.Count - 1), p => Assert.DoesNotContain("\uFFFD", p, StringComparison.Ordinal));
        Assert.Equal(" 🦀", string.Concat(pieces));
        Assert.Equal("", sd.Flush());
    }

    [Fact]
    public void StreamingDecoder_FlushesIncompleteBytesAsReplacement()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Spm);
        int b0 = Array.IndexOf(TrainedVocabs.Spm.Tokens, "<0xF0>"), b1 = Array.IndexOf(TrainedVocabs.Spm.Tokens, "<0x9F>");
        var sd = new StreamingDecoder(tok);
        Assert.Equal("", sd.Push(b0));
        Assert.Equal("", sd.Push(b1));
        Assert.Equal("\uFFFD", sd.Flush());
    }

    [Fact]
    public void HfJson_RoundTrip_GivesIdenticalIds()
    {
        foreach (var spec in new[] { TrainedVocabs.Gpt2, TrainedVocabs.Gpt2 with { Pre = "llama3", AddBos = true }, TrainedVocabs.Gpt2 with { Pre = "qwen2" },
                     TrainedVocabs.Gpt2 with { Pre = "default" }, TrainedVocabs.Spm })
        {
            string json = HfTokenizerJson.ToHfJson(spec);
            var loaded = HfTokenizerJson.Parse(json, eosId: spec.EosId);
            Assert.Equal(spec.Model, loaded.Model);
            Assert.Equal(PreTokenizer.ForName(spec.Pre).Family, loaded.Model == "gpt2" ? PreTokenizer.ForName(loaded.Pre).Family : PreTokenizer.ForName(null).Family);
            Assert.Equal(spec.Tokens, loaded.Tokens);
            Assert.Equal(spec.TokenTypes, loaded.TokenTypes);
            Assert.Equal(spec.BosId, loaded.BosId);
            var a = TokenizerFactory.FromSpec(spec);
            var b = TokenizerFactory.FromSpec(loaded);
            Assert.Equal(a.AddBos, b.AddBos);
            foreach (var text in Texts())
                foreach (bool special in new[] { false, true })
                    Assert.Equal(a.Encode(text, true, special), b.Encode(text, true, special));
        }
    }

    [Fact]
    public void HfJson_ReadsStringAndPairMergesAndAddedTokens()
    {
        const string json = """
        {"added_tokens":[{"id":5,"content":"<|endoftext|>","special":true},{"id":6,"content":"<tool>","special":false}],
         "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
         "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4},"merges":["a b",["Ġ","ab"]]}}
        """;
        var spec = HfTokenizerJson.Parse(json);
        Assert.Equal("gpt-2", spec.Pre);
        Assert.Equal(["a", "b", "ab", "Ġ", "Ġab", "<|endoftext|>", "<tool>"], spec.Tokens);
        Assert.Equal((int)TokenType.Control, spec.TokenTypes![5]);
        Assert.Equal((int)TokenType.UserDefined, spec.TokenTypes[6]);
        Assert.Equal(5, spec.EosId);
        var tok = TokenizerFactory.FromSpec(spec);
        Assert.Equal([2, 4, 6, 0], tok.Encode("ab ab<tool>a", addSpecial: false));
        Assert.Equal([2, 5], tok.Encode("ab<|endoftext|>", false, parseSpecial: true));
    }

    [Fact]
    public void HfJson_BadInput_GivesClearErrors()
    {
        var e1 = Assert.Throws<InvalidModelException>(() => HfTokenizerJson.Parse("""{"model":{"type":"WordPiece","vocab":{}}}"""));
        Assert.Contains("WordPiece", e1.Message, StringComparison.Ordinal);
        var e2 = Assert.Throws<InvalidModelException>(() => HfTokenizerJson.Parse("""{"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0,"b":2},"merges":[]}}"""));
        Assert.Contains("gaps", e2.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidModelException>(() => HfTokenizerJson.Parse("{not json"));
    }

    [Fact]
    public void MergeNamingUnknownToken_IsAnError()
    {
        var spec = TrainedVocabs.Gpt2 with { Merges = [.. TrainedVocabs.Gpt2.Merges!, "zzz@ q"] };
        var e = Assert.Throws<InvalidModelException>(() => TokenizerFactory.FromSpec(spec));
        Assert.Contains("zzz@", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidModelException>(() => TokenizerFactory.FromSpec(TrainedVocabs.Gpt2 with { Pre = "no-such-pre" }));
        Assert.Throws<InvalidModelException>(() => TokenizerFactory.FromSpec(TrainedVocabs.Gpt2 with { Model = "bert" }));
    }

    [Fact]
    public void TokenIdOutOfRange_IsAnError()
    {
        var tok = TokenizerFactory.FromSpec(TrainedVocabs.Spm);
        var e = Assert.Throws<PareException>(() => tok.TokenBytes(tok.VocabSize));
        Assert.Contains("outside the vocabulary", e.Message, StringComparison.Ordinal);
        Assert.Throws<PareException>(() => tok.Decode([-1]));
    }

    [Fact]
    public void FromGguf_ReadsWhatTheTrainerWrote()
    {
        foreach (var spec in new[] { TrainedVocabs.Gpt2, TrainedVocabs.Spm })
        {
            string path = Path.Combine(Path.GetTempPath(), $"pare-tok-{Guid.NewGuid():N}.gguf");
            try
            {
                TokenizerGguf.Write(spec, path);
                using var f = GgufFile.Open(path);
                var tok = TokenizerFactory.FromGguf(f);
                Assert.Equal(TokenizerFactory.FromSpec(spec).Encode(TokenizerCorpus.MultiParagraph), tok.Encode(TokenizerCorpus.MultiParagraph));
            }
            finally { File.Delete(path); }
        }
    }

    [Fact]
    public void Trainers_AreDeterministicAndFast()
    {
        var text = TokenizerCorpus.Synthetic(50_000, seed: 5);
        var sw = Stopwatch.StartNew();
        var a = BpeTrainer.TrainGpt2([text], 600);
        long bpeMs = sw.ElapsedMilliseconds;
        sw.Restart();
        var s = SpmVocabBuilder.Build([text], 600);
        long spmMs = sw.ElapsedMilliseconds;
        output.WriteLine($"BPE 600 on 50 KB: {bpeMs} ms; SPM 600: {spmMs} ms");
        Assert.Equal(600, a.Tokens.Length);
        Assert.Equal(600, s.Tokens.Length);
        Assert.True(bpeMs < 1000 && spmMs < 1000, $"training too slow: {bpeMs} / {spmMs} ms");
        var b = BpeTrainer.TrainGpt2([text], 600);
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(a.Merges, b.Merges);
        Assert.Equal(s.Tokens, SpmVocabBuilder.Build([text], 600).Tokens);
        // Byte tokens first (id = byte), special token last and control.
        Assert.Equal("Ġ", a.Tokens[' ']);
        Assert.Equal("<|endoftext|>", a.Tokens[^1]);
        Assert.Equal((int)TokenType.Control, a.TokenTypes![^1]);
        Assert.Equal("<0x0A>", s.Tokens[3 + '\n']);
    }

    [Fact]
    public void BpeTrainer_UsesGivenSpecialTokens()
    {
        var spec = BpeTrainer.TrainGpt2([TokenizerCorpus.Synthetic(5000)], 400, ["<s>", "</s>"], pre: "llama3", addBos: true);
        Assert.Equal("<s>", spec.Tokens[spec.BosId!.Value]);
        Assert.Equal("</s>", spec.Tokens[spec.EosId!.Value]);
        var tok = TokenizerFactory.FromSpec(spec);
        Assert.Equal(spec.BosId, tok.Encode("hi")[0]);
    }
}
