using System.CommandLine;
using System.Diagnostics;
using Pare.Generation;
using Pare.Models;
using Pare.Speculative;

namespace Pare.Cli.Commands;

/// <summary><c>pare run MODEL -p PROMPT</c>: generate text, streamed to the terminal.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue.", Required = true };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var temp = new Option<float>("--temp") { Description = "Sampling temperature, 0 to 100; 0 = greedy.", DefaultValueFactory = _ => 0.8f }.Between(0, 100);
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = off).", DefaultValueFactory = _ => 40 }.AtLeast(0);
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling threshold in (0, 1] (1 = off).", DefaultValueFactory = _ => 0.95f }
            .Check(v => v > 0 && v <= 1, "in (0, 1]");
        var minP = new Option<float>("--min-p") { Description = "Drop tokens below min-p x the top probability, in [0, 1) (0 = off).", DefaultValueFactory = _ => 0.05f }
            .Check(v => v >= 0 && v < 1, "in [0, 1)");
        var repeat = new Option<float>("--repeat-penalty") { Description = "Penalty for tokens seen in the last 64, 0.01 to 100 (1 = off).", DefaultValueFactory = _ => 1.0f }.Between(0.01f, 100);
        var seed = new Option<ulong>("--seed", "-s") { Description = "Random seed (same seed, same text).", DefaultValueFactory = _ => 0UL };
        var stop = new Option<string[]>("--stop") { Description = "Stop when this text appears (repeatable); the text and the token ids end before it.", AllowMultipleArgumentsPerToken = false };
        var ctx = new Option<int?>("--ctx") { Description = "KV cache length (default: the model's, at most 4096); past the model's trained context it warns." }.Between(2, 1 << 20);
        var draft = new Option<string>("--draft") { Description = "Speculative drafter: none, pld (prompt lookup), recycle (Token Recycling), lookahead (trie), aded, auto (chooses from measured costs; falls back to plain decoding when speculation does not pay), or with a draft model of the same tokenizer: auto:FILE (auto, ADED, Lookahead, DySpec and chain on FILE: each step the one measured fastest), model:FILE (chain), tree:FILE (fixed tree), dyspec:FILE, rasd:FILE, self[:LAYERS] (the model with only LAYERS blocks). Greedy output is identical to plain decoding; sampled output has its distribution.", DefaultValueFactory = _ => "auto" };
        draft.Check(v => Drafters.Names.Contains(v) || Drafters.IsModelDrafter(v), $"one of {string.Join(", ", Drafters.Names.Concat(Drafters.ModelForms))}");
        var maxTree = new Option<int>("--max-tree") { Description = "Largest draft tree verified in one pass (nodes).", DefaultValueFactory = _ => 32 }.Between(1, 256);
        var threads = Cli.Threads();
        var kvType = Cli.KvType();
        var kvPolicy = Cli.KvPolicy();
        var kvBudget = Cli.KvBudget();
        var selCache = Cli.KvSelectionCache();
        var json = Cli.Json();
        var cmd = new Command("run", "Generate a continuation of a prompt, streaming tokens as they come.")
            { model, prompt, maxTokens, temp, topK, topP, minP, repeat, seed, stop, ctx, draft, maxTree, threads, kvType, kvPolicy, kvBudget, selCache, json };
        cmd.SetAction((r, ct) => Cli.Guard(async () =>
        {
            bool asJson = r.GetValue(json);
            // A speculative run compiles more before its first token than plain decoding (SpeculativeGenerator.Prepare): on
            // the other core while this one loads the model and encodes the prompt, not in the time to the first token.
            var prepared = r.GetValue(draft) == "none" ? Task.CompletedTask : Task.Run(() => { SpeculativeGenerator.Prepare(); CostCache.Prepare(); }, ct);
            using var m = Cli.Load(r.GetValue(model)!);
            var tok = m.Tokenizer ?? throw new PareException($"{m.Source}: the model has no tokenizer, so a text prompt cannot be encoded (use 'pare logits --tokens')");
            var ids = tok.Encode(r.GetValue(prompt)!, addSpecial: true);
            var options = new GenerationOptions
            {
                MaxTokens = r.GetValue(maxTokens),
                StopSequences = r.GetValue(stop) ?? [],
                Sampling = new SamplingOptions
                {
                    Temperature = r.GetValue(temp), TopK = r.GetValue(topK), TopP = r.GetValue(topP), MinP = r.GetValue(minP),
                    RepetitionPenalty = r.GetValue(repeat), Seed = r.GetValue(seed),
                },
            };
            Cli.CheckContext(r.GetValue(ctx), m);
            int sessionCtx = r.GetValue(ctx) ?? Math.Min(m.Config.ContextLength, 4096);
            var policy = Cli.MakeKvPolicy(r.GetValue(kvPolicy)!, r.GetValue(kvBudget), m, sessionCtx, Cli.SelectionCache(r.GetValue(selCache)));
            var session = m.CreateSession(new SessionOptions { Threads = r.GetValue(threads), ContextLength = r.GetValue(ctx), KvType = r.GetValue(kvType), KvPolicy = policy });
            var text = new System.Text.StringBuilder();
            var tokens = new List<int>();
            var sw = Stopwatch.StartNew();
            double firstTokenS = 0;
            var drafter = Drafters.Create(r.GetValue(draft)!, session);
            using var draftRunner = (drafter as IModelDrafter)?.Runner;
            var stats = new SpeculationStats();
            // Normally done by now; if not, what is left of it counts as the prompt's time.
            await prepared;
            var stream = drafter == null
                ? Generator.GenerateAsync(session, ids, options, ct)
                : SpeculativeGenerator.GenerateAsync(session, ids, options, drafter,
                    new SpeculativeOptions { MaxTreeSize = r.GetValue(maxTree), Costs = CostCache.Get(m, session) }, stats, ct);
            await foreach (var t in stream)
            {
                if (tokens.Count == 0) firstTokenS = sw.Elapsed.TotalSeconds;
                if (t.Id >= 0) tokens.Add(t.Id);
                text.Append(t.Text);
                if (!asJson) { Console.Out.Write(t.Text); Console.Out.Flush(); }
            }
            double total = sw.Elapsed.TotalSeconds;
            // A stop sequence ends the text before it; the ids end with it (what `pare serve` does too).
            if (options.StopSequences.Count > 0) tokens = Cli.TokensWithin(tok, tokens, text.ToString());
            // The first token's time includes the prompt; decode speed counts the tokens after it.
            double decodeTokS = tokens.Count > 1 ? (tokens.Count - 1) / Math.Max(1e-9, total - firstTokenS) : 0;
            int steps = drafter == null ? Math.Max(0, tokens.Count - 1) : stats.Steps;
            double mat = drafter == null ? 1.0 : stats.MeanAccepted;
            var ts = policy as Pare.LongContext.KvPolicies.TokenSelectPolicy;
            if (asJson)
                Cli.PrintJson(new { text = text.ToString(), tokens, prompt_tokens = ids.Length, decode_tok_s = decodeTokS, prompt_s = firstTokenS, draft = r.GetValue(draft), mean_accepted = mat, steps,
                    selections = ts?.Selections, selection_cache_hits = ts?.CacheHits, selection_cache_hit_rate = ts?.CacheHitRate,
                    selection_cache_layer_hits = ts?.CacheHitRate == null ? null : ts.LayerCacheHits, selection_layer_selections = ts?.CacheHitRate == null ? null : ts.LayerSelections });
            else
                Console.Error.WriteLine($"\n[{ids.Length} prompt tokens in {firstTokenS:F2} s, {tokens.Count} generated, {decodeTokS:F1} tok/s decode; drafter {r.GetValue(draft)}: {steps} steps, {mat:F2} tokens/step"
                    + (ts?.CacheHitRate is double hr ? $"; selection cache {ts.CacheHits}/{ts.Selections} hits ({hr * 100:F1}%)]" : "]"));
            return 0;
        }));
        return cmd;
    }
}
