using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Pare.Extensions.AI;
using Pare.Models;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Server;

/// <summary>The in-process IChatClient: same text as `pare run` greedy, streaming = non-streaming, options, cancellation, DI.</summary>
public class PareChatClientTests
{
    static string ModelPath => ReferenceModels.Require(ReferenceModels.PareRef);
    static ChatMessage[] Ask(string q) => [new ChatMessage(ChatRole.User, q)];

    [Fact]
    public async Task Greedy_response_equals_pare_run_and_streaming_equals_it()
    {
        using var client = new PareChatClient(ModelPath, new PareChatClientOptions { Threads = 1 });
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 20 };
        var response = await client.GetResponseAsync(Ask("Tell me a story about a dog."), options);
        var run = PareCli.Run("run", ModelPath, "-p", "User: Tell me a story about a dog.\nAssistant:", "-n", "20", "--temp", "0", "--json");
        Assert.Equal(run.Json.GetProperty("text").GetString(), response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(20, response.Usage?.OutputTokenCount);
        Assert.Equal("pare-ref", response.ModelId);

        var streamed = new System.Text.StringBuilder();
        int updates = 0;
        await foreach (var u in client.GetStreamingResponseAsync(Ask("Tell me a story about a dog."), options)) { streamed.Append(u.Text); updates++; }
        Assert.Equal(response.Text, streamed.ToString());
        Assert.True(updates > 5);
    }

    [Fact]
    public async Task Options_are_honoured_and_tools_refused()
    {
        using var model = LlamaModel.Load(ModelPath);
        using var client = new PareChatClient(model, new PareChatClientOptions { Draft = "none", Threads = 1 });
        var a = await client.GetResponseAsync(Ask("Hi"), new ChatOptions { Temperature = 1, Seed = 5, MaxOutputTokens = 12 });
        var b = await client.GetResponseAsync(Ask("Hi"), new ChatOptions { Temperature = 1, Seed = 5, MaxOutputTokens = 12 });
        Assert.Equal(a.Text, b.Text); // same seed, same text
        var full = await client.GetResponseAsync(Ask("Hi"), new ChatOptions { Temperature = 0, MaxOutputTokens = 30 });
        string stop = full.Text.Substring(6, 2);
        var cut = await client.GetResponseAsync(Ask("Hi"), new ChatOptions { Temperature = 0, MaxOutputTokens = 30, StopSequences = [stop] });
        Assert.Equal(full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(Ask("Hi"),
            new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Ask("Hi"), new ChatOptions { TopP = 2 }));
    }

    [Fact]
    public async Task Cancellation_stops_the_stream()
    {
        using var client = new PareChatClient(ModelPath, new PareChatClientOptions { Threads = 1 });
        using var cts = new CancellationTokenSource();
        int n = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in client.GetStreamingResponseAsync(Ask("Tell me a story."), new ChatOptions { MaxOutputTokens = 200 }, cts.Token))
                if (++n == 3) cts.Cancel();
        });
        Assert.Equal(3, n);
        // The client is usable afterwards (its lock was released).
        Assert.NotEmpty((await client.GetResponseAsync(Ask("Hi"), new ChatOptions { MaxOutputTokens = 3 })).Text);
    }

    [Fact]
    public void AddPareChatClient_registers_an_IChatClient()
    {
        var services = new ServiceCollection();
        services.AddPareChatClient(ModelPath, new PareChatClientOptions { Draft = "none", Threads = 1 });
        using var provider = services.BuildServiceProvider();
        var chat = provider.GetRequiredService<IChatClient>();
        Assert.Equal("pare-ref", chat.GetService<ChatClientMetadata>()?.DefaultModelId);
        Assert.NotNull(chat.GetService<LlamaModel>());
    }
}
