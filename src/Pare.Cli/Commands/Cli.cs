using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Pare.Models;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary>
/// Options and plumbing shared by the verbs. A verb (one file in Commands/, one registration line in Program.cs) follows:
/// <list type="bullet">
/// <item><c>cmd.SetAction((r, ct) =&gt; Cli.Guard(async () =&gt; { ... }))</c>: <c>ct</c> is cancelled by Ctrl+C / SIGTERM
/// (<see cref="Cancellation"/>, also for synchronous actions); pass it on. <see cref="Guard(Func{Task{int}})"/> turns a
/// <see cref="PareException"/> (and I/O, argument errors) into "pare: error: ..." and exit 1, cancellation into
/// "pare: cancelled" and exit 130, anything else into one "pare: internal error" line and exit 70.</item>
/// <item>Range checks on the option, so they run while parsing: <c>.AtLeast(1)</c>, <c>.Between(0, 1)</c>,
/// <c>.Check(v =&gt; ..., "in (0, 1]")</c>; <see cref="Threads"/> comes checked. A parse error is one line with a pointer to
/// the verb's --help (<see cref="ErrorLine"/>). Tests/Cli/VerbSurfaceTests covers every registered verb by itself: --help,
/// missing required options, and random values for every numeric option.</item>
/// <item>Work that cannot take a token and writes nothing: <see cref="Abandonable{T}"/>. Output files appear only when
/// complete (write to a temporary name, then move).</item>
/// <item>User text in Spectre tables or markup goes through <c>Markup.Escape</c> (a tensor shape "[256, 8192]" is markup otherwise).</item>
/// <item><see cref="Warn"/> for a warning line; <see cref="CheckContext"/> for a --ctx option; <see cref="TokensWithin"/>
/// for the ids of a text cut at a stop sequence (text and ids both end before it).</item>
/// </list>
/// </summary>
internal static class Cli
{
    public static Argument<string> ModelArgument() => new("model") { Description = "Path of a GGUF file (or a Hugging Face directory with config.json and *.safetensors)." };

    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of text." };

    /// <summary>--threads, checked to 1 .. 4 x the cores (more only slows the kernels down).</summary>
    public static Option<int> Threads()
    {
        var o = new Option<int>("--threads", "-t")
        {
            Description = $"Worker threads for the kernels, 1 to {MaxThreads} (default: all cores).",
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        return o.Check(v => v >= 1 && v <= MaxThreads, $"between 1 and {MaxThreads} (4 x the {Environment.ProcessorCount} cores)");
    }

    /// <summary>--kv-type f32|f16|q8_0: how the KV cache stores keys and values.</summary>
    public static Option<Pare.Kernels.KvValueType> KvType() => new("--kv-type")
    {
        Description = "KV cache value type: f32 (exact, default), f16 (half the bytes), q8_0 (llama.cpp's q8_0 blocks, about a quarter).",
        DefaultValueFactory = _ => Pare.Kernels.KvValueType.F32,
        HelpName = "f32|f16|q8_0",
        CustomParser = r =>
        {
            string v = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "f32";
            switch (v.ToLowerInvariant())
            {
                case "f32": return Pare.Kernels.KvValueType.F32;
                case "f16": return Pare.Kernels.KvValueType.F16;
                case "q8_0": return Pare.Kernels.KvValueType.Q8_0;
                default: r.AddError($"--kv-type must be f32, f16 or q8_0 (got '{v}')"); return default;
            }
        },
    };

    /// <summary>--kv-policy NAME: which cached positions each head attends to (Pare.LongContext.KvPolicies).</summary>
    public static Option<string> KvPolicy() => new Option<string>("--kv-policy")
    {
        Description = $"KV policy: {string.Join(", ", Pare.LongContext.KvPolicies.KvPolicy.Names)} (default full: every head reads the whole cache). Needs --kv-budget unless full.",
        DefaultValueFactory = _ => "full",
    }.Check(v => Pare.LongContext.KvPolicies.KvPolicy.Names.Contains(v.ToLowerInvariant()), $"one of {string.Join(", ", Pare.LongContext.KvPolicies.KvPolicy.Names)}");

    /// <summary>--kv-budget N: positions each head attends to under --kv-policy (at least 1, at most the context).</summary>
    public static Option<int?> KvBudget() => new Option<int?>("--kv-budget") { Description = "Cached positions each head attends to under --kv-policy (1 .. the context)." }.AtLeast(1);

    /// <summary>--kv-selection-cache THRESHOLD|off: TokenSelect's selection cache (parsed by <see cref="SelectionCache"/>).</summary>
    public static Option<string?> KvSelectionCache() => new Option<string?>("--kv-selection-cache")
    {
        Description = "tokenselect: reuse a layer's previous selection while consecutive queries have cosine >= THRESHOLD (in (0, 1]; the paper's 0.9), or off (default, as the released code).",
    };

    /// <summary>The --kv-selection-cache value: null for absent or off, else the threshold (its range is checked by KvPolicy.Create).</summary>
    public static double? SelectionCache(string? v) =>
        v is null or "off" ? null
        : double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double t) && double.IsFinite(t) ? t
        : throw new PareException($"--kv-selection-cache must be a cosine threshold in (0, 1] or off (got {v})");

    /// <summary>The session's policy (null for full without a budget or selection cache), checked against the session's context.</summary>
    public static Pare.Models.Kv.IKvPolicy? MakeKvPolicy(string name, int? budget, LlamaModel m, int context, double? selectionCache = null) =>
        name.Equals("full", StringComparison.OrdinalIgnoreCase) && budget == null && selectionCache == null ? null
        : Pare.LongContext.KvPolicies.KvPolicy.Create(name, budget, m.Config, context, selectionCache: selectionCache);

    /// <summary>The most --threads accepted: beyond 4 threads per core the kernels only lose time to switching.</summary>
    public static int MaxThreads => 4 * Environment.ProcessorCount;

    // ---- option checks: run while parsing, before any work, so a bad value is one line and exit 1 ----

    /// <summary>Rejects values for which <paramref name="ok"/> is false: "pare: error: --NAME must be WHAT (got V)".</summary>
    public static Option<T> Check<T>(this Option<T> option, Func<T, bool> ok, string what)
    {
        option.Validators.Add(r =>
        {
            T v;
            // A value that does not convert (e.g. too big for an int) already has its own parse error.
            try { v = r.GetValueOrDefault<T>(); }
            catch (InvalidOperationException) { return; }
            if (v is not null && !ok(v)) r.AddError($"{option.Name} must be {what} (got {Show(v)})");
        });
        return option;
    }

    /// <summary>Integer option of at least <paramref name="min"/>.</summary>
    public static Option<int> AtLeast(this Option<int> o, int min) => o.Check(v => v >= min, $"at least {min}");

    /// <summary>Optional integer option of at least <paramref name="min"/> when given.</summary>
    public static Option<int?> AtLeast(this Option<int?> o, int min) => o.Check(v => v is not int x || x >= min, $"at least {min}");

    /// <summary>Integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Between(this Option<int> o, int min, int max) => o.Check(v => v >= min && v <= max, $"between {min} and {max}");

    /// <summary>Optional integer option in [<paramref name="min"/>, <paramref name="max"/>] when given.</summary>
    public static Option<int?> Between(this Option<int?> o, int min, int max) => o.Check(v => v is not int x || (x >= min && x <= max), $"between {min} and {max}");

    /// <summary>Finite real option in [<paramref name="min"/>, <paramref name="max"/>] (NaN and infinities rejected).</summary>
    public static Option<float> Between(this Option<float> o, float min, float max) =>
        o.Check(v => float.IsFinite(v) && v >= min && v <= max, $"between {Show(min)} and {Show(max)}");

    static string Show(object? v) => v switch
    {
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        null => "nothing",
        _ => v.ToString() ?? "",
    };

    /// <summary>A warning line on stderr (the run goes on).</summary>
    public static void Warn(string message) => Console.Error.WriteLine($"pare: warning: {OneLine(message)}");

    /// <summary>
    /// Checks a requested context length against the model: one whose KV cache would take more than half the memory
    /// available is refused; one past the context the model was trained on is run with a warning (quality falls off beyond it).
    /// </summary>
    public static void CheckContext(int? requested, LlamaModel m, string option = "--ctx", long? availableBytes = null)
    {
        if (requested is not int n) return;
        var c = m.Config;
        double kvBytes = 2.0 * c.Layers * n * c.KvDim * sizeof(float);
        long available = availableBytes ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (kvBytes > available / 2.0)
            throw new PareException($"{option} {n} needs {kvBytes / (1 << 30):F1} GiB of KV cache, more than half of the {available / (double)(1 << 30):F1} GiB available");
        if (n > c.ContextLength)
            Warn($"{option} {n} is past the model's trained context of {c.ContextLength} tokens: positions beyond it are untrained and quality drops");
    }

    static readonly JsonSerializerOptions JsonOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void PrintJson(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Whether to draw progress bars: only on a terminal, never with --json.</summary>
    public static bool Interactive(bool json) => !json && !Console.IsOutputRedirected && !Console.IsErrorRedirected;

    /// <summary>
    /// Runs a verb: user errors (<see cref="PareException"/>, I/O, bad arguments) become one line on stderr and exit code 1;
    /// Ctrl+C / SIGTERM (the token every action gets, see <see cref="InvokeAsync"/>) become "pare: cancelled" and exit
    /// code 130; anything else is a bug, reported on one line as an internal error, exit code 70 (PARE_DEBUG=1 prints the stack).
    /// </summary>
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (IsCancellation(e))
        {
            await Console.Error.WriteLineAsync("pare: cancelled");
            return 130;
        }
        catch (PareException e)
        {
            await Console.Error.WriteLineAsync($"pare: error: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OutOfMemoryException or FormatException or ArgumentException
            or OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"pare: error: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync(Environment.GetEnvironmentVariable("PARE_DEBUG") == "1" ? e.ToString()
                : $"pare: internal error: {e.GetType().Name}: {OneLine(e.Message)} (please report it; PARE_DEBUG=1 shows where)");
            return 70;
        }
    }

    public static int Guard(Func<int> body) => Guard(() => Task.FromResult(body())).GetAwaiter().GetResult();

    /// <summary>Cancellation by Ctrl+C / SIGTERM, also when it comes wrapped (a parallel loop's AggregateException); a
    /// timeout's OperationCanceledException is an error like any other.</summary>
    static bool IsCancellation(Exception e) => Cancellation.IsCancellationRequested
        && (e is OperationCanceledException || (e is AggregateException a && a.Flatten().InnerExceptions.All(x => x is OperationCanceledException)));

    /// <summary>
    /// Runs work that cannot observe a token (a library loop without one) on the thread pool and waits for it or for
    /// <paramref name="ct"/>: on Ctrl+C the verb ends promptly and the abandoned work ends with the process. Only for work
    /// that writes nothing.
    /// </summary>
    public static T Abandonable<T>(Func<T> work, CancellationToken ct)
    {
        try { return Task.Run(work, ct).WaitAsync(ct).GetAwaiter().GetResult(); }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1) { throw e.InnerExceptions[0]; }
    }

    static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();

    // ---- invocation: one-line parse errors, `pare` in usage lines, Ctrl+C that reaches the work ----

    static readonly CancellationTokenSource Signals = new();
    static int _signalCount;

    /// <summary>Cancelled by the first Ctrl+C (SIGINT) or SIGTERM; a second one ends the process at once.</summary>
    public static CancellationToken Cancellation => Signals.Token;

    /// <summary>Tests set this to receive the root command instead of running it (in-process parsing checks).</summary>
    internal static Action<RootCommand>? OnRoot { get; set; }

    /// <summary>
    /// Parses and runs <paramref name="args"/>. A parse error (missing or unknown option, a value out of range) is one line,
    /// "pare: error: ... (see 'pare VERB --help')", exit code 1, with no help text after it. The token an action receives
    /// (<c>SetAction((r, ct) => ...)</c>) is <see cref="Cancellation"/>: System.CommandLine's own handling is off because it
    /// registers only once an action has yielded, so synchronous verbs never saw Ctrl+C.
    /// </summary>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        if (OnRoot is { } capture) { capture(root); return 0; }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        if (args.Length == 0) args = ["--help"];
        var parsed = Parse(root, args);
        if (ErrorLine(parsed) is { } error)
        {
            await Console.Error.WriteLineAsync(error);
            return 1;
        }
        // Help and --version write here; the usage lines name the executable, which is Pare.Cli under `dotnet run`.
        var help = new StringWriter();
        int rc = await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, Output = help }, Signals.Token);
        if (help.GetStringBuilder().Length > 0) await Console.Out.WriteAsync(UsageName(help.ToString()));
        return rc;
    }

    /// <summary>
    /// Parses as `pare` does: no response files, so an argument that starts with '@' (a prompt "@alice hi", a value "@x")
    /// is itself, not the name of a file to read arguments from.
    /// </summary>
    internal static ParseResult Parse(RootCommand root, IReadOnlyList<string> args) =>
        root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });

    static void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signalCount) > 1) return; // second signal: the default action ends the process
        context.Cancel = true;
        Signals.Cancel();
    }

    /// <summary>The one line a parse error prints, or null when the command line parsed (or asks for help).</summary>
    internal static string? ErrorLine(ParseResult parsed)
    {
        if (parsed.Errors.Count == 0 || parsed.Action is System.CommandLine.Help.HelpAction) return null;
        var messages = parsed.Errors.Select(e => Friendlier(OneLine(e.Message)).TrimEnd('.')).Distinct().ToList();
        if (messages.Count > 1) messages.Remove("Required command was not provided");
        var names = new List<string>();
        for (var c = parsed.CommandResult; c != null; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            if (c.Command is not RootCommand) names.Insert(0, c.Command.Name);
        return $"pare: error: {string.Join("; ", messages)} (see 'pare {string.Join(' ', names)}{(names.Count > 0 ? " " : "")}--help')";
    }

    /// <summary>"as expected type 'System.Int32'" reads as "as a whole number".</summary>
    static string Friendlier(string message) => System.Text.RegularExpressions.Regex.Replace(message, @"as expected type 'System\.(\w+)'", m => m.Groups[1].Value switch
    {
        "Int32" => "as a whole number (at most 2147483647)",
        "Int64" => "as a whole number",
        "UInt32" or "UInt64" => "as a whole number of 0 or more",
        "Single" or "Double" => "as a number",
        var other => $"as {other}",
    });

    static string UsageName(string help) =>
        System.Text.RegularExpressions.Regex.Replace(help, @"^(\s+)" + System.Text.RegularExpressions.Regex.Escape(RootCommand.ExecutableName) + @"\b", "$1pare",
            System.Text.RegularExpressions.RegexOptions.Multiline);

    /// <summary>
    /// The generated ids whose text lies wholly inside the returned text: with a stop sequence the text ends before it,
    /// and so do the ids (the tokens that spell any part of the stop sequence are dropped), as OpenAI-style servers do.
    /// </summary>
    public static List<int> TokensWithin(Tokenizers.ITokenizer tok, IReadOnlyList<int> ids, string text)
    {
        var decoder = new Tokenizers.StreamingDecoder(tok);
        var kept = new List<int>();
        int length = 0;
        foreach (int id in ids)
        {
            length += decoder.Push(id).Length;
            if (length > text.Length) break;
            kept.Add(id);
        }
        return kept;
    }

    public static LlamaModel Load(string path) => LlamaModel.Load(path);

    /// <summary>Peak resident memory of this process in MiB (VmHWM on Linux), or -1 where unknown.</summary>
    public static double PeakRssMb()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return double.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return -1;
    }

    /// <summary>Async <see cref="WithProgress{T}"/>.</summary>
    public static async Task WithProgressAsync(bool json, string title, Func<IProgress<double>?, Task> work)
    {
        if (!Interactive(json)) { await work(null); return; }
        await AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1.0);
                await work(new Progress<double>(p => task.Value = p));
                task.Value = 1.0;
            });
    }

    /// <summary>Runs <paramref name="work"/> under a progress bar on a terminal, or plainly otherwise.</summary>
    public static T WithProgress<T>(bool json, string title, Func<IProgress<double>?, T> work)
    {
        if (!Interactive(json)) return work(null);
        T result = default!;
        AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1.0);
                result = work(new Progress<double>(p => task.Value = p));
                task.Value = 1.0;
            });
        return result;
    }
}
