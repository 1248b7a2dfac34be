using Pare.Formats.Gguf;
using Pare.Tokenizers;

namespace Pare.Models;

/// <summary>Glue between the model and the format-specific loaders.</summary>
internal static class ModelLoaders
{
    public static ITokenizer TokenizerFromGguf(GgufFile f) => TokenizerFactory.FromGguf(f);

    public static LlamaModel LoadHuggingFace(string path) => throw new PareException($"{path}: safetensors loading is not wired yet");
}
