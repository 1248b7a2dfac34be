using Pare.Data;
using Pare.Tests.TestSupport;
using Pare.Tokenizers;

namespace Pare.Tests.Training;

/// <summary>The reference tokenizer (8k byte-level BPE trained on the real train split) against llama.cpp on the real test split.</summary>
public class ReferenceTokenizerTests
{
    [Fact]
    public void Llama_cpp_tokenizes_the_test_split_to_pares_ids()
    {
        var info = CorpusFetcher.Fetch(new FetchOptions { CacheDir = TestCorpus.CacheDir });
        var spec = TokenizerFiles.Train(info.TrainPath, 8192);
        Assert.Equal(8192, spec.Tokens.Length);
        string test = File.ReadAllText(info.TestPath);
        var pare = new Gpt2BpeTokenizer(spec);
        using var cpp = TokenizerGguf.Load(spec);
        var ids = pare.Encode(test, addSpecial: true);
        Assert.Equal(cpp.Tokenize(test, addSpecial: true, parseSpecial: false), ids);
        // The paragraph-parallel encoding used for training data gives the same ids as encoding the text whole.
        Assert.Equal(ids, TokenizerFiles.EncodeParagraphs(pare, test));
        Assert.InRange(test.Length / (double)ids.Length, 3.5, 5.5); // chars per token
    }
}
