using Pare.Tokenizers;

namespace Pare.Tests.Encoders;

/// <summary>BERT basic tokenization and WordPiece on a small hand-made vocabulary.</summary>
public class WordPieceTests
{
    static readonly string[] Vocab =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cafe", "un", "##aff", "##able", "!", ",", ".", "-", "—", "’",
        "hello", "world", "中", "国", "a", "##b", "b", "##c", "x",
    ];

    static WordPieceTokenizer Tok(WordPieceOptions? o = null) => new(Vocab, o);
    static string[] Pieces(WordPieceTokenizer t, string s) => [.. t.Encode(s, addSpecial: false).Select(t.TokenText)];

    [Fact]
    public void Greedy_longest_match_with_continuation_pieces() =>
        Assert.Equal(["un", "##aff", "##able"], Pieces(Tok(), "unaffable"));

    [Fact]
    public void A_word_with_an_unmatched_rest_is_one_unk() =>
        Assert.Equal(["hello", "[UNK]", "world"], Pieces(Tok(), "hello unaffz world"));

    [Fact]
    public void Lowercases_and_strips_accents() =>
        Assert.Equal(["the", "cafe"], Pieces(Tok(), "THE Café"));

    [Fact]
    public void Cased_option_keeps_case_and_accents() =>
        Assert.Equal(["[UNK]", "[UNK]"], Pieces(Tok(new WordPieceOptions { Lowercase = false }), "THE Café"));

    [Fact]
    public void Splits_every_punctuation_character_ascii_and_unicode() =>
        Assert.Equal(["hello", ",", "world", "!", "!", "a", "—", "b", "’", "x"], Pieces(Tok(), "hello,world!! a—b’x"));

    [Fact]
    public void Cjk_ideographs_are_words_of_their_own() =>
        Assert.Equal(["hello", "中", "国", "world"], Pieces(Tok(), "hello中国world"));

    [Fact]
    public void Control_characters_are_dropped_and_any_whitespace_separates() =>
        Assert.Equal(["hello", "world", "the"], Pieces(Tok(), "hel\u0000lo\u200b\tworld\u00a0\u2003the\r\n"));

    [Fact]
    public void Words_longer_than_the_limit_are_unk() =>
        Assert.Equal(["[UNK]"], Pieces(Tok(new WordPieceOptions { MaxInputCharsPerWord = 5 }), "abcbcbc"));

    [Fact]
    public void Surrogate_pairs_are_never_split() =>
        Assert.Equal(["a", "[UNK]"], Pieces(Tok(), "a 😀b"));

    [Fact]
    public void Encoding_for_the_model_wraps_and_truncates_keeping_sep()
    {
        var t = Tok();
        var (ids, cut) = t.EncodeForModel("hello world the cafe", 4);
        Assert.True(cut);
        Assert.Equal(["[CLS]", "hello", "world", "[SEP]"], ids.Select(t.TokenText));
        var (all, notCut) = t.EncodeForModel("hello world", 4);
        Assert.False(notCut);
        Assert.Equal(t.Encode("hello world"), all);
        Assert.Equal(["[CLS]", "[SEP]"], t.Encode("").Select(t.TokenText));
    }

    [Fact]
    public void A_vocabulary_without_special_tokens_is_refused() =>
        Assert.Throws<InvalidModelException>(() => new WordPieceTokenizer(["a", "b"]));
}
