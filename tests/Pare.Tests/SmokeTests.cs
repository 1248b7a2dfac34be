namespace Pare.Tests;
public class SmokeTests
{
    [Fact]
    public void LlamaCppNativeLibraryLoads()
    {
        LLama.Native.NativeApi.llama_empty_call();
        Assert.True(LLama.Native.NativeApi.llama_max_devices() >= 1);
    }
}
