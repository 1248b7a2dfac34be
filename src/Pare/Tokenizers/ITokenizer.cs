namespace Pare.Tokenizers;

/// <summary>A tokenizer read from a model file: text to ids and ids to bytes.</summary>
public interface ITokenizer
{
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }
    /// <summary>Whether encoding with special tokens prepends BOS (tokenizer.ggml.add_bos_token).</summary>
    bool AddBos { get; }

    /// <summary>Token ids of <paramref name="text"/>; with <paramref name="addSpecial"/> BOS is prepended when the model asks for it.
    /// With <paramref name="parseSpecial"/> the text of control tokens (e.g. "&lt;s&gt;") is recognised as those tokens.</summary>
    int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>The bytes a token stands for in output text (control tokens give none).</summary>
    byte[] TokenBytes(int id);

    /// <summary>The token's piece as stored in the vocabulary.</summary>
    string TokenText(int id);

    /// <summary>Whether the token is a control token (BOS, EOS, ...).</summary>
    bool IsControl(int id);
}
