using System.CommandLine;
using Pare.Server;
using Pare.Speculative;

namespace Pare.Cli.Commands;

/// <summary><c>pare serve MODEL...</c>: an OpenAI-compatible HTTP server (see docs/serving.md).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var models = new Argument<string[]>("model") { Description = "GGUF files (or Hugging Face directories) to serve; each is addressed by its file name without extension.", Arity = ArgumentArity.OneOrMore };
        var d = new ServerOptions();
        var host = new Option<string>("--host") { Description = "Address to bind (default loopback only; 0.0.0.0 or * exposes the server to the network).", DefaultValueFactory = _ => d.Host };
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port; the address is printed).", DefaultValueFactory = _ => d.Port };
        var draft = new Option<string>("--draft") { Description = "Speculative drafter for every request (output identical to plain decoding).", DefaultValueFactory = _ => d.Draft };
        draft.AcceptOnlyFromAmong(Drafters.Names);
        var parallel = new Option<int>("--parallel", "-np") { Description = "Requests generating at the same time (slots).", DefaultValueFactory = _ => d.Parallel };
        var queue = new Option<int>("--queue") { Description = "Requests waiting for a slot before new ones get 503.", DefaultValueFactory = _ => d.QueueLength };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every /v1 endpoint (or set PARE_API_KEY)." };
        var ctx = new Option<int?>("--ctx") { Description = "Context (KV cache) length per slot (default: the model's, at most 4096)." };
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var cmd = new Command("serve", "Serve models over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health).")
            { models, host, port, draft, parallel, queue, apiKey, ctx, threads, kvType };
        cmd.SetAction((r, ct) => Cli.Guard(async () =>
        {
            var options = new ServerOptions
            {
                Host = r.GetValue(host)!, Port = r.GetValue(port), Draft = r.GetValue(draft)!, Parallel = r.GetValue(parallel),
                QueueLength = r.GetValue(queue), ApiKey = r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("PARE_API_KEY"),
                ContextLength = r.GetValue(ctx), Threads = r.GetValue(threads), KvType = r.GetValue(kvType),
            };
            options.Validate();
            var loaded = new List<ServedModel>();
            try
            {
                foreach (var path in r.GetValue(models)!)
                {
                    var m = Cli.Load(path);
                    string id = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(path));
                    try { loaded.Add(new ServedModel(id, m, options)); }
                    catch { m.Dispose(); throw; }
                }
                await using var server = await PareServer.StartAsync(options, loaded, ct);
                Console.Out.WriteLine($"pare serve: listening on {server.Address} (models: {string.Join(", ", loaded.Select(m => m.Id))}; {options.Parallel} slot(s); draft {options.Draft}{(options.ApiKey != null ? "; API key required" : "")})");
                Console.Out.Flush();
                await server.WaitAsync(ct);
                return 0;
            }
            finally
            {
                foreach (var m in loaded) m.Model.Dispose();
            }
        }));
        return cmd;
    }
}
