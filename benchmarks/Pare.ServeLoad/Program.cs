using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pare.Generation;
using Pare.Models;
using Pare.Server;

// Load test of the server on loopback (in this process: Kestrel + HttpClient), then speculative decoding through it.
//   dotnet run -c Release --project benchmarks/Pare.ServeLoad -- [--model models/pare-ref.gguf] [--parallel 4] [--clients 32]
//       [--requests 500] [--disconnects 100] [--max-tokens 48] [--draft auto] [--threads 1]
// Every stream's text is checked against the greedy output of its own prompt computed in-process (no request lost or
// mixed up); a fifth of the requests ask for 400 tokens and hang up after a few chunks. The server under load runs in a
// child process (this program with serve-child), so its RSS (VmRSS) is the server's alone.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
if (args.Length == 6 && args[0] == "serve-child")
{
    // The server under load runs in its own process, so that its RSS is its own (not the clients').
    using var served = LlamaModel.Load(args[1]);
    var o = new ServerOptions
    {
        Port = 0, Parallel = int.Parse(args[2], CultureInfo.InvariantCulture), QueueLength = int.Parse(args[3], CultureInfo.InvariantCulture),
        Draft = args[4], Threads = int.Parse(args[5], CultureInfo.InvariantCulture),
    };
    await using var child = await PareServer.StartAsync(o, [new ServedModel("pare-ref", served, o)]);
    Console.WriteLine(child.Address);
    await Console.In.ReadToEndAsync(); // until the parent closes stdin
    return;
}
var opt = new Dictionary<string, string>
{
    ["model"] = "models/pare-ref.gguf", ["parallel"] = "4", ["clients"] = "32", ["requests"] = "500", ["disconnects"] = "100",
    ["max-tokens"] = "48", ["draft"] = "auto", ["threads"] = "1",
};
for (int i = 0; i + 1 < args.Length; i += 2) opt[args[i].TrimStart('-')] = args[i + 1];
int Int(string k) => int.Parse(opt[k], CultureInfo.InvariantCulture);
int parallel = Int("parallel"), clients = Int("clients"), requests = Int("requests"), disconnects = Int("disconnects"), maxTokens = Int("max-tokens"), threads = Int("threads");

using var model = LlamaModel.Load(opt["model"]);
string[] names = ["Tom", "Lily", "Sam", "Mia", "Ben", "Zoe", "Max", "Amy", "Leo", "Eva"];
string[] starts = ["Once upon a time, {0} went to the park", "{0} had a red ball", "One day {0} saw a big dog", "{0} liked to read books"];
var prompts = names.SelectMany(n => starts.Select(s => string.Format(CultureInfo.InvariantCulture, s, n))).ToArray();
var expected = new Dictionary<string, string>();
foreach (var p in prompts)
{
    var sb = new StringBuilder();
    await foreach (var t in Generator.GenerateAsync(model.CreateSession(new SessionOptions { Threads = threads }), model.Tokenizer!.Encode(p, addSpecial: true),
        new GenerationOptions { MaxTokens = maxTokens, Sampling = SamplingOptions.Greedy })) sb.Append(t.Text);
    expected[p] = sb.ToString();
}

var childInfo = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Pare.ServeLoad.dll"), "serve-child",
    opt["model"], parallel.ToString(CultureInfo.InvariantCulture), Math.Max(64, clients).ToString(CultureInfo.InvariantCulture), opt["draft"], threads.ToString(CultureInfo.InvariantCulture) })
    childInfo.ArgumentList.Add(a);
using var serverProcess = Process.Start(childInfo)!;
var serverAddress = new Uri(await serverProcess.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("the server process did not start"));
double ServerRssMb()
{
    foreach (var line in File.ReadLines($"/proc/{serverProcess.Id}/status"))
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
    return double.NaN;
}
try
{
    // No draining of an abandoned response (the default reads up to 1 MB of it to reuse the connection): hanging up closes it.
    using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, MaxConnectionsPerServer = 1000 }) { BaseAddress = serverAddress, Timeout = TimeSpan.FromMinutes(5) };
    http.DefaultRequestHeaders.ConnectionClose = false;
    var latencies = new List<double>();
    var gate = new Lock();
    int next = -1, ok = 0, hungUp = 0, wrong = 0, failed = 0, doneCount = 0;
    long tokens = 0;
    double rss50 = 0, rssMid = 0;
    var disconnectSet = Enumerable.Range(0, requests).Where(i => i % Math.Max(1, requests / Math.Max(1, disconnects)) == 2).Take(disconnects).ToHashSet();
    var wall = Stopwatch.StartNew();
    async Task Worker()
    {
        while (true)
        {
            int i = Interlocked.Increment(ref next);
            if (i >= requests) return;
            string prompt = prompts[i % prompts.Length];
            bool hangUp = disconnectSet.Contains(i);
            var sw = Stopwatch.StartNew();
            try
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
                { Content = JsonContent.Create(new { prompt, max_tokens = hangUp ? 400 : maxTokens, temperature = 0, stream = true, stream_options = new { include_usage = true } }) };
                using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
                if (!resp.IsSuccessStatusCode) { Interlocked.Increment(ref failed); Console.Error.WriteLine($"request {i}: {(int)resp.StatusCode}"); continue; }
                using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
                var text = new StringBuilder();
                int chunks = 0, completion = -1;
                string? line;
                while ((line = await reader.ReadLineAsync()) != null)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                    if (line == "data: [DONE]") break;
                    using var doc = JsonDocument.Parse(line[6..]);
                    var root = doc.RootElement;
                    if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) completion = u.GetProperty("completion_tokens").GetInt32();
                    if (root.GetProperty("choices").GetArrayLength() > 0) text.Append(root.GetProperty("choices")[0].GetProperty("text").GetString());
                    if (hangUp && ++chunks == 3 + i % 7) break; // leave mid-stream: disposing the response closes the connection
                }
                if (hangUp) { Interlocked.Increment(ref hungUp); continue; }
                if (text.ToString() != expected[prompt]) { Interlocked.Increment(ref wrong); Console.Error.WriteLine($"request {i}: text differs from its prompt's greedy output"); continue; }
                Interlocked.Increment(ref ok);
                Interlocked.Add(ref tokens, completion);
                lock (gate) latencies.Add(sw.Elapsed.TotalMilliseconds);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException)
            {
                Interlocked.Increment(ref failed);
                Console.Error.WriteLine($"request {i}: {e.Message}");
            }
            finally
            {
                int done = Interlocked.Increment(ref doneCount);
                if (done == 50) rss50 = ServerRssMb();
                if (done == requests / 2) rssMid = ServerRssMb();
            }
        }
    }
    await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(Worker)));
    double seconds = wall.Elapsed.TotalSeconds;
    // Wait for the last hang-ups to be noticed (reported below), then measure memory.
    var settle = Stopwatch.StartNew();
    while (JsonDocument.Parse(await http.GetStringAsync("slots")).RootElement.GetProperty("slots_processing").GetInt32() > 0 && settle.ElapsedMilliseconds < 10_000)
        await Task.Delay(5);
    double settleMs = settle.Elapsed.TotalMilliseconds;
    double rssEnd = ServerRssMb();
    var slots = JsonDocument.Parse(await http.GetStringAsync("slots")).RootElement;
    latencies.Sort();
    double P(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
    Console.WriteLine($"load: {requests} streaming requests, {clients} concurrent clients, {parallel} slots, draft {opt["draft"]}, max_tokens {maxTokens}, greedy, {threads} kernel thread(s) per slot");
    Console.WriteLine($"  completed {ok} (text equal to own greedy output), hung up {hungUp}, wrong text {wrong}, failed {failed}");
    Console.WriteLine($"  latency p50 {P(0.50):F0} ms, p95 {P(0.95):F0} ms; aggregate {tokens / seconds:F1} tok/s over {seconds:F1} s");
    Console.WriteLine($"  server: {slots} (all slots idle {settleMs:F0} ms after the last client finished)");
    Console.WriteLine($"  server RSS after 50 requests {rss50:F1} MB, after {requests / 2} {rssMid:F1} MB, after the run {rssEnd:F1} MB ({(rssEnd / rss50 - 1) * 100:+0.0;-0.0}% on 50, {(rssEnd / rssMid - 1) * 100:+0.0;-0.0}% on {requests / 2})");

    // Disconnect to free slot, from the client's side: one stream at a time, hang up after 3 chunks, poll /slots.
    var freed = new List<double>();
    for (int rep = 0; rep < 20; rep++)
    {
        using (var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        { Content = JsonContent.Create(new { prompt = prompts[rep % prompts.Length], max_tokens = 400, temperature = 0.8, seed = rep, stream = true }) })
        {
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
            for (int k = 0; k < 6; k++) await reader.ReadLineAsync();
        }
        var t = Stopwatch.StartNew();
        while (JsonDocument.Parse(await http.GetStringAsync("slots")).RootElement.GetProperty("slots_processing").GetInt32() > 0 && t.ElapsedMilliseconds < 5000)
            await Task.Delay(1);
        freed.Add(t.Elapsed.TotalMilliseconds);
    }
    freed.Sort();
    Console.WriteLine($"  disconnect -> slot free (client side, 20 hang-ups): median {freed[10]:F1} ms, max {freed[^1]:F1} ms");
}
finally
{
    serverProcess.StandardInput.Close();
    if (!serverProcess.WaitForExit(10_000)) serverProcess.Kill(true);
}

// Speculative decoding through the server: one client, greedy, the same prompts, --draft none against the chosen drafter.
foreach (var draft in new[] { "none", opt["draft"] == "none" ? "auto" : opt["draft"] })
{
    var o = new ServerOptions { Port = 0, Parallel = 1, Draft = draft, Threads = Environment.ProcessorCount };
    await using var server = await PareServer.StartAsync(o, [new ServedModel("pare-ref", model, o)]);
    using var http = new HttpClient { BaseAddress = server.Address };
    double genMs = 0, accepted = 0;
    int n = 0, generated = 0;
    for (int rep = 0; rep < 2; rep++)
        foreach (var p in prompts.Take(8))
        {
            var r = await http.PostAsJsonAsync("v1/completions", new { prompt = p, max_tokens = 128, temperature = 0 });
            var j = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("timings");
            if (rep == 0) continue; // warm-up pass
            genMs += j.GetProperty("predicted_ms").GetDouble();
            generated += Math.Max(0, j.GetProperty("predicted_n").GetInt32() - 1);
            accepted += j.GetProperty("mean_accepted").GetDouble();
            n++;
        }
    Console.WriteLine($"speculation through the server: --draft {draft,-5} {generated / (genMs / 1000):F1} tok/s decode (8 prompts x 128 tokens, greedy, {o.Threads} threads), mean accepted {accepted / n:F2} tokens/step");
}
