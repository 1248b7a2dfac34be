using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Pare.Models;
using Spectre.Console;

namespace Pare.Cli.Commands;

/// <summary>Options and plumbing shared by the verbs.</summary>
internal static class Cli
{
    public static Argument<string> ModelArgument() => new("model") { Description = "Path of a GGUF file (or a Hugging Face directory with config.json and *.safetensors)." };

    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of text." };

    public static Option<int> Threads() => new("--threads", "-t")
    {
        Description = "Worker threads for the kernels (default: all cores).",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    };

    static readonly JsonSerializerOptions JsonOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void PrintJson(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Whether to draw progress bars: only on a terminal, never with --json.</summary>
    public static bool Interactive(bool json) => !json && !Console.IsOutputRedirected && !Console.IsErrorRedirected;

    /// <summary>Runs a verb: user errors become one line on stderr and exit code 1; Ctrl+C exits 130.</summary>
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (PareException e)
        {
            await Console.Error.WriteLineAsync($"pare: error: {OneLine(e.Message)}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("pare: cancelled");
            return 130;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OutOfMemoryException or FormatException)
        {
            await Console.Error.WriteLineAsync($"pare: error: {OneLine(e.Message)}");
            return 1;
        }
    }

    public static int Guard(Func<int> body) => Guard(() => Task.FromResult(body())).GetAwaiter().GetResult();

    static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();

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
                var task = ctx.AddTask(title, maxValue: 1.0);
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
                var task = ctx.AddTask(title, maxValue: 1.0);
                result = work(new Progress<double>(p => task.Value = p));
                task.Value = 1.0;
            });
        return result;
    }
}
