using Pare.Formats.Gguf;
using Pare.Tokenizers;

namespace Pare.Models;

/// <summary>Glue between the model and the format-specific loaders.</summary>
internal static class ModelLoaders
{
    public static ITokenizer TokenizerFromGguf(GgufFile f) => TokenizerFactory.FromGguf(f);

    /// <summary>A Hugging Face checkpoint: config.json + *.safetensors (+ tokenizer.json when present) in one directory.</summary>
    public static LlamaModel LoadHuggingFace(string path)
    {
        if (path.EndsWith(HfConfig.FileName, StringComparison.OrdinalIgnoreCase)) path = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string dir = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var (config, weights, owner) = HfLoader.Load(path);
        try
        {
            var hf = HfConfig.Load(Path.Combine(dir, HfConfig.FileName));
            string tokPath = Path.Combine(dir, "tokenizer.json");
            ITokenizer? tok = File.Exists(tokPath)
                ? TokenizerFactory.FromHfJson(tokPath, hf.BosTokenId, hf.EosTokenIds.Count > 0 ? hf.EosTokenIds[0] : null)
                : null;
            if (tok != null && tok.VocabSize > config.VocabSize)
                throw new InvalidModelException($"{tokPath}: tokenizer has {tok.VocabSize} tokens but the model's vocabulary is {config.VocabSize}");
            return new LlamaModel(config, weights, tok, path, owner);
        }
        catch
        {
            owner.Dispose();
            throw;
        }
    }
}
