using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using ChatFinishReason = OpenAI.Chat.ChatFinishReason;
using Pare.Tests.TestSupport;

namespace Pare.Tests.Server;

/// <summary>`pare serve` as clients use it: the official OpenAI .NET client, raw HTTP, SSE, auth, limits, disconnects.</summary>
public class ServeTests(ServeProcess server) : IClassFixture<ServeProcess>
{
    const string Question = "Tell me a story about a dog.";
    // The plain template (the reference models carry none): "User: ...\nAssistant:".
    const string ChatPrompt = "User: " + Question + "\nAssistant:";

    static string PareRun(string model, string prompt, int n)
    {
        var r = PareCli.Run("run", model, "-p", prompt, "-n", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "--temp", "0", "--json");
        Assert.Equal(0, r.ExitCode);
        return r.Json.GetProperty("text").GetString()!;
    }

    ChatClient OpenAiChat(string key = ServeProcess.Key) =>
        new("pare-ref", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = server.V1 });

    [Fact]
    public async Task OpenAI_client_non_streaming_greedy_equals_pare_run()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 24 };
        ChatCompletion c = await OpenAiChat().CompleteChatAsync([new UserChatMessage(Question)], options);
        string expected = PareRun(server.ModelPath, ChatPrompt, 24);
        Assert.Equal(expected, c.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, c.FinishReason);
        Assert.Equal(24, c.Usage.OutputTokenCount);
        Assert.True(c.Usage.InputTokenCount > 5);
        Assert.Equal(c.Usage.InputTokenCount + 24, c.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task OpenAI_client_streams_the_same_text_with_usage()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 24 };
        var text = new StringBuilder();
        int updates = 0;
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var u in OpenAiChat().CompleteChatStreamingAsync([new UserChatMessage(Question)], options))
        {
            updates++;
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            usage ??= u.Usage;
            finish ??= u.FinishReason;
        }
        Assert.Equal(PareRun(server.ModelPath, ChatPrompt, 24), text.ToString());
        Assert.True(updates > 5, $"{updates} updates: not streamed piece by piece");
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.NotNull(usage);
        Assert.Equal(24, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Extensions_AI_chat_client_over_the_server_works()
    {
        IChatClient chat = OpenAiChat().AsIChatClient();
        var response = await chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, Question)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 16 });
        Assert.Equal(PareRun(server.ModelPath, ChatPrompt, 16), response.Text);
        Assert.Equal(16, response.Usage?.OutputTokenCount);
        var streamed = new StringBuilder();
        await foreach (var u in chat.GetStreamingResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, Question)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 16 }))
            streamed.Append(u.Text);
        Assert.Equal(response.Text, streamed.ToString());
    }

    [Fact]
    public async Task Completions_endpoint_raw_SSE_ends_with_usage_and_DONE()
    {
        using var http = server.Http();
        const string prompt = "Once upon a time";
        string expected = PareRun(server.ModelPath, prompt, 20);
        var plain = await Post(http, "v1/completions", new { prompt, max_tokens = 20, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, plain.Status);
        Assert.Equal(expected, plain.Json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", plain.Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(plain.Json.GetProperty("timings").GetProperty("predicted_per_second").GetDouble() > 0);

        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        { Content = new StringContent(JsonSerializer.Serialize(new { prompt, max_tokens = 20, temperature = 0, stream = true, stream_options = new { include_usage = true } }), Encoding.UTF8, "application/json") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        string body = await resp.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        Assert.Equal("data: [DONE]", events[^1]);
        var usage = JsonDocument.Parse(events[^2][6..]).RootElement;
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        Assert.Equal(20, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var finish = JsonDocument.Parse(events[^3][6..]).RootElement;
        Assert.Equal("length", finish.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        string text = string.Concat(events[..^2].Select(e => JsonDocument.Parse(e[6..]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(expected, text);
    }

    [Fact]
    public async Task Stop_sequence_ends_with_finish_reason_stop()
    {
        using var http = server.Http();
        string full = PareRun(server.ModelPath, "Once upon a time", 30);
        string stop = full.Substring(8, 3);
        var r = await Post(http, "v1/completions", new { prompt = "Once upon a time", max_tokens = 30, temperature = 0, stop });
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], r.Json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("stop", r.Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public void Binds_to_loopback_by_default() => Assert.Equal("127.0.0.1", server.BaseUri.Host);

    [Fact]
    public async Task Wrong_or_missing_key_is_401_and_health_is_public()
    {
        using var none = server.Http(key: null);
        using var wrong = server.Http(key: "test-key-12"); // a prefix of the real key
        Assert.Equal(HttpStatusCode.Unauthorized, (await none.GetAsync("v1/models")).StatusCode);
        var r = await Post(wrong, "v1/chat/completions", new { messages = new[] { new { role = "user", content = "hi" } } });
        Assert.Equal(HttpStatusCode.Unauthorized, r.Status);
        Assert.Equal("authentication_error", r.Json.GetProperty("error").GetProperty("type").GetString());
        await Assert.ThrowsAsync<ClientResultException>(() => OpenAiChat("nope").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(HttpStatusCode.OK, (await none.GetAsync("health")).StatusCode);
        using var ok = server.Http();
        var models = JsonDocument.Parse(await ok.GetStringAsync("v1/models")).RootElement;
        Assert.Equal("pare-ref", models.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Ten_megabyte_body_is_413()
    {
        // Expect: 100-continue, as a careful client sends a large body: the server refuses from the headers alone,
        // before a byte of the body travels (a client that pushes the body regardless sees the connection closed).
        using var http = server.Http();
        http.DefaultRequestHeaders.ExpectContinue = true;
        var big = "{\"prompt\":\"" + new string('a', 10 << 20) + "\"}";
        var r = await Post(http, "v1/completions", big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.Status);
        Assert.Equal("invalid_request_error", r.Json.GetProperty("error").GetProperty("type").GetString());
        // Just over the 1 MiB limit without Content-Length (chunked): the limit holds while reading.
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{\"prompt\":\"" + new string('a', (1 << 20) + 10) + "\"}"))) };
        chunked.Headers.TransferEncodingChunked = true;
        using var resp = await http.SendAsync(chunked);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, resp.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
    }

    [Theory]
    [InlineData("{\"prompt\":\"x\",", "")]
    [InlineData("[1,2]", "")]
    [InlineData("{\"prompt\":5}", "prompt")]
    [InlineData("{\"prompt\":\"x\",\"max_tokens\":-2}", "max_tokens")]
    [InlineData("{\"prompt\":\"x\",\"max_tokens\":1e40}", "max_tokens")]
    [InlineData("{\"prompt\":\"x\",\"max_tokens\":\"3\"}", "max_tokens")]
    [InlineData("{\"prompt\":\"x\",\"temperature\":-1}", "temperature")]
    [InlineData("{\"prompt\":\"x\",\"top_p\":0}", "top_p")]
    [InlineData("{\"prompt\":\"x\",\"seed\":-7}", "seed")]
    [InlineData("{\"prompt\":\"x\",\"stream\":\"yes\"}", "stream")]
    [InlineData("{\"prompt\":\"x\",\"model\":\"gpt-4\"}", "model")]
    [InlineData("{\"prompt\":\"x\",\"n\":2}", "n")]
    [InlineData("{\"prompt\":\"\"}", "prompt")]
    public async Task Bad_completion_requests_are_400_with_an_OpenAI_error(string body, string param)
    {
        using var http = server.Http();
        var r = await Post(http, "v1/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
        var e = r.Json.GetProperty("error");
        Assert.Equal("invalid_request_error", e.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("message").GetString()));
        if (param.Length > 0) Assert.Equal(param, e.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Prompt_longer_than_the_context_is_400_and_max_tokens_is_capped()
    {
        using var http = server.Http();
        var r = await Post(http, "v1/completions", new { prompt = string.Concat(Enumerable.Repeat("word ", 2000)) });
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
        Assert.Contains("context", r.Json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        // Near the body limit: refused from its length alone, before tokenizing 900 KB.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var huge = await Post(http, "v1/completions", new { prompt = new string('w', 900_000) });
        Assert.Equal(HttpStatusCode.BadRequest, huge.Status);
        Assert.Contains("context", huge.Json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(sw.ElapsedMilliseconds < 10_000, $"{sw.ElapsedMilliseconds} ms");
        // 500 words leave a few dozen positions of the 512-token context: a huge max_tokens is cut to them.
        var near = await Post(http, "v1/completions", new { prompt = string.Concat(Enumerable.Repeat("word ", 490)), max_tokens = 1_000_000, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, near.Status);
        var usage = near.Json.GetProperty("usage");
        Assert.True(usage.GetProperty("total_tokens").GetInt32() <= 512, near.Json.ToString());
    }

    [Fact]
    public async Task Fuzzed_bodies_never_crash_the_server()
    {
        using var http = server.Http();
        var rng = new Random(2024);
        string[] seeds =
        [
            """{"model":"pare-ref","messages":[{"role":"user","content":"Hi there"}],"max_tokens":2,"temperature":0.5,"top_p":0.9,"top_k":10,"min_p":0.1,"seed":3,"stop":["\n"]}""",
            """{"prompt":"Once upon","max_tokens":2,"stream":true,"stream_options":{"include_usage":true},"seed":1}""",
            """{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":1,"stream":false}""",
        ];
        string[] inserts = ["", "null", "-1", "1e309", "99999999999999999999", "\"\"", "[]", "{}", "true", "\"\\ud800\"", "0.0", "-0", "[[[[[[[[", "\u0000", "\"x\":", ","];
        var statuses = new Dictionary<int, int>();
        for (int i = 0; i < 1200; i++)
        {
            var s = new StringBuilder(seeds[rng.Next(seeds.Length)]);
            int edits = 1 + rng.Next(4);
            for (int k = 0; k < edits && s.Length > 0; k++)
            {
                int at = rng.Next(s.Length);
                switch (rng.Next(4))
                {
                    case 0: s.Remove(at, Math.Min(s.Length - at, 1 + rng.Next(6))); break;
                    case 1: s.Insert(at, inserts[rng.Next(inserts.Length)]); break;
                    case 2: s[at] = (char)rng.Next(1, 128); break;
                    default: s.Insert(at, (char)rng.Next(0x20, 0x3000)); break;
                }
            }
            var r = await Post(http, i % 2 == 0 ? "v1/chat/completions" : "v1/completions", s.ToString());
            statuses[(int)r.Status] = statuses.GetValueOrDefault((int)r.Status) + 1;
            Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{(int)r.Status} for {s}: {r.Body}");
            if (r.Status == HttpStatusCode.BadRequest) Assert.True(r.Json.GetProperty("error").GetProperty("message").GetString()!.Length > 0);
        }
        Assert.False(server.Exited, server.Stderr);
        Assert.True(statuses.GetValueOrDefault(200) > 50 && statuses.GetValueOrDefault(400) > 300, string.Join(", ", statuses));
        var after = await Post(http, "v1/completions", new { prompt = "Once upon a time", max_tokens = 5, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, after.Status);
        Assert.DoesNotContain("Exception", server.Stderr, StringComparison.Ordinal);
    }

    public sealed record Reply(HttpStatusCode Status, string Body)
    {
        public JsonElement Json => JsonDocument.Parse(Body).RootElement;
    }

    internal static async Task<Reply> Post(HttpClient http, string path, object body)
    {
        string json = body as string ?? JsonSerializer.Serialize(body);
        using var resp = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        return new Reply(resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }
}

/// <summary>A server with one slot and no queue: a second concurrent request is refused with 503 and Retry-After.</summary>
public class ServeQueueTests
{
    [Fact]
    public async Task A_client_that_disconnects_frees_its_slot()
    {
        // Plain decoding: a drafter can finish pare-ref's 400 looping greedy tokens before the client has read 4 lines.
        using var server = ServeProcess.With("--parallel", "1", "--draft", "none");
        using var http = server.Http(key: null);
        // On a loaded machine (tests run in parallel) the client can be descheduled long enough for the server to finish
        // all 400 tokens before the hang-up: that attempt counts as completed, not cancelled, and is tried again. A
        // server that ignored hang-ups would finish every attempt.
        for (int attempt = 0; ; attempt++)
        {
            var before = JsonDocument.Parse(await http.GetStringAsync("slots")).RootElement;
            long cancelledBefore = before.GetProperty("requests_cancelled").GetInt64(), completedBefore = before.GetProperty("requests_completed").GetInt64();
            using (var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
            { Content = new StringContent(JsonSerializer.Serialize(new { prompt = "Once upon a time", max_tokens = 400, stream = true, temperature = 0 }), Encoding.UTF8, "application/json") })
            {
                using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
                using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
                for (int i = 0; i < 4; i++) await reader.ReadLineAsync();
            } // disposing the response closes the connection mid-stream
            var sw = System.Diagnostics.Stopwatch.StartNew();
            JsonElement after;
            do
            {
                // The request is counted before its slot is freed, so one read shows both.
                after = JsonDocument.Parse(await http.GetStringAsync("slots")).RootElement;
                if (after.GetProperty("slots_processing").GetInt32() == 0) break;
                await Task.Delay(10);
            } while (sw.ElapsedMilliseconds < 5000);
            Assert.Equal(0, after.GetProperty("slots_processing").GetInt32());
            long cancelled = after.GetProperty("requests_cancelled").GetInt64(), completed = after.GetProperty("requests_completed").GetInt64();
            Assert.Equal(cancelledBefore + completedBefore + 1, cancelled + completed);
            // The server saw the hang-up and stopped (rather than finishing the 400 tokens into a closed connection).
            if (cancelled == cancelledBefore + 1) break;
            Assert.True(attempt < 4, "five requests ran to completion after their clients hung up");
        }
    }

    [Fact]
    public async Task Full_queue_is_503_with_retry_after()
    {
        using var server = ServeProcess.With("--parallel", "1", "--queue", "0", "--draft", "none");
        using var http = server.Http(key: null);
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        // Greedy: a sampled continuation can end early (end of text), and then the slot is free again before the third request.
        { Content = new StringContent("""{"prompt":"Once upon a time","max_tokens":400,"stream":true,"temperature":0}""", Encoding.UTF8, "application/json") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        await reader.ReadLineAsync(); // the slot is taken and generating
        var second = await ServeTests.Post(http, "v1/completions", new { prompt = "Hello", max_tokens = 2 });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.Status);
        Assert.Equal("unavailable_error", second.Json.GetProperty("error").GetProperty("type").GetString());
        using var again = await http.PostAsync("v1/completions", new StringContent("{\"prompt\":\"Hello\"}", Encoding.UTF8, "application/json"));
        Assert.NotNull(again.Headers.RetryAfter);
    }
}
